"""The spend cap: dollars spent plus the worst case of every call in flight stays under the cap."""

from __future__ import annotations

from collections import defaultdict

from runner.errors import SpendCapReached


class SpendGuard:
    """Admits a call only if spent + in-flight worst cases + its own worst case fit every cap.

    Checked synchronously before each call (no await between check and reservation), so
    concurrent workers can never jointly overshoot.
    """

    def __init__(
        self,
        max_usd: float | None,
        provider_caps: dict[str, float | None],
        spent: float = 0.0,
        spent_by_provider: dict[str, float] | None = None,
    ) -> None:
        self.max_usd = max_usd
        self.provider_caps = {k: v for k, v in provider_caps.items() if v is not None}
        self.spent = spent
        self.spent_by_provider: dict[str, float] = defaultdict(float, spent_by_provider or {})
        self.in_flight = 0.0
        self.in_flight_by_provider: dict[str, float] = defaultdict(float)
        self.reached: str | None = None

    def reserve(self, provider: str, worst_usd: float, *, commits_usd: float = 0.0, new_work: bool = True) -> float:
        """Reserve a call's worst case; raise SpendCapReached if it does not fit.

        Args:
            commits_usd: the worst case of calls this one commits its job to (a trace's forced
                answers): checked now, reserved when they start, so a started job can finish.
            new_work: False for calls that finish work already paid for (answers to a streamed
                trace): they may still run after the cap stopped new work, if they fit.
        """
        if self.reached is not None and new_work:
            raise SpendCapReached(self.reached)
        need = worst_usd + (commits_usd if new_work else 0.0)
        if self.max_usd is not None and self.spent + self.in_flight + need > self.max_usd:
            reason = (
                f"run.max_usd ${self.max_usd:.4f}: spent ${self.spent:.4f} + in flight ${self.in_flight:.4f} "
                f"+ next call up to ${need:.4f} would exceed it"
            )
            if new_work:
                self.reached = reason
            raise SpendCapReached(reason)
        cap = self.provider_caps.get(provider)
        if cap is not None and (self.spent_by_provider[provider] + self.in_flight_by_provider[provider] + need > cap):
            reason = f"providers.{provider}.max_usd ${cap:.4f} would be exceeded"
            if new_work:
                self.reached = reason
            raise SpendCapReached(reason)
        self.in_flight += worst_usd
        self.in_flight_by_provider[provider] += worst_usd
        return worst_usd

    def settle(self, provider: str, reserved: float, actual_usd: float) -> None:
        self.in_flight -= reserved
        self.in_flight_by_provider[provider] -= reserved
        self.spent += actual_usd
        self.spent_by_provider[provider] += actual_usd
