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

    def reserve(self, provider: str, worst_usd: float) -> float:
        """Reserve a call's worst case; raise SpendCapReached if it does not fit."""
        if self.reached is not None:
            raise SpendCapReached(self.reached)
        if self.max_usd is not None and self.spent + self.in_flight + worst_usd > self.max_usd:
            self.reached = (
                f"run.max_usd ${self.max_usd:.4f}: spent ${self.spent:.4f} + in flight ${self.in_flight:.4f} "
                f"+ next call up to ${worst_usd:.4f} would exceed it"
            )
            raise SpendCapReached(self.reached)
        cap = self.provider_caps.get(provider)
        if cap is not None and (
            self.spent_by_provider[provider] + self.in_flight_by_provider[provider] + worst_usd > cap
        ):
            self.reached = f"providers.{provider}.max_usd ${cap:.4f} would be exceeded"
            raise SpendCapReached(self.reached)
        self.in_flight += worst_usd
        self.in_flight_by_provider[provider] += worst_usd
        return worst_usd

    def settle(self, provider: str, reserved: float, actual_usd: float) -> None:
        self.in_flight -= reserved
        self.in_flight_by_provider[provider] -= reserved
        self.spent += actual_usd
        self.spent_by_provider[provider] += actual_usd
