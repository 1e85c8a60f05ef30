"""The spend cap: dollars spent plus the worst case of every call in flight stays under the cap.

A call's worst case is reserved at the moment the lane's limiter admits it (`try_reserve`, with no
await between the two), never while it waits for capacity, so calls queued behind a rate limit
hold no money. A call that does not fit is told one of two things. If it cannot fit whatever the
calls in flight settle at (``spent + need > cap``: spending only grows), the cap is reached:
`SpendCapReached` is raised and, for new work, the guard stays closed. If it fits only once some
calls in flight settle for less than their worst case, it waits for them (`wait_settled`) and
asks again: the run never stops while it still has the budget for its next call.

A trace commits its job to its forced answers. Their worst case is reserved with the trace, as the
job's commitment, and each answer draws on it when it starts: answers sent while the trace still
streams (`run.answers = "at_cut"`) never find the money their trace was admitted with taken by
traces admitted after it. What the answers did not draw is given back when the job's execution
ends (`release`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple, Protocol

import anyio

from runner.errors import SpendCapReached

# why a lane waits, as `LaneStats.waiting_for` reports it
WAIT_SPEND_CAP = "spend cap"


class SpendNeed(NamedTuple):
    """What a call asks of the caps.

    Attributes:
        provider: the lane (its own cap may apply).
        worst_usd: the call's worst case, reserved while it runs.
        commits_usd: the worst case of calls this one commits its job to (a trace's forced
            answers): checked now, reserved when they start, so a started job can finish.
        new_work: False for calls that finish work already paid for (answers to a streamed
            trace): they may still run after the cap stopped new work, if they fit.
    """

    provider: str
    worst_usd: float
    commits_usd: float = 0.0
    new_work: bool = True
    owner: tuple[str, str] | None = None  # (job id, execution): whose commitment it holds or draws on
    draws: bool = False  # a forced answer: its worst case comes out of its trace's commitment first


class SpendGate(Protocol):
    """What a lane asks of the spend cap: this process's `SpendGuard`, or a worker's proxy of the
    coordinator's guard (`runner.cluster.remote`), which answers `reserve` over a round trip."""

    def raise_if_never_fits(self, need: SpendNeed) -> None: ...

    async def reserve(self, need: SpendNeed) -> float | None: ...

    async def wait_settled(self) -> None: ...

    def settle(self, provider: str, reserved: float, actual_usd: float) -> None: ...

    def release(self, owner: tuple[str, str]) -> None: ...


class SpendGuard:
    """Admits a call only if spent + in-flight worst cases + its own worst case fit every cap.

    Checked synchronously (no await between check and reservation), so concurrent workers can
    never jointly overshoot.
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
        self.calls_in_flight = 0  # counted, not read off the float sum, which may drift off zero
        self.reached: str | None = None
        # per job execution: (provider, dollars) reserved for its forced answers and not yet drawn
        self.committed: dict[tuple[str, str], tuple[str, float]] = {}
        self._settled: anyio.Event | None = None  # made on first wait: the guard is built off the loop

    def raise_if_never_fits(self, need: SpendNeed) -> None:
        """Raise SpendCapReached when ``need`` cannot fit whatever the calls in flight settle at
        (new work also closes the guard then); return when it fits, or may once they settle."""
        if self.reached is not None and need.new_work:
            raise SpendCapReached(self.reached)
        reason = self._refusal(need, in_flight=False)
        if reason is not None:
            if need.new_work:
                self.reached = reason
            raise SpendCapReached(reason)

    def try_reserve(self, need: SpendNeed) -> float | None:
        """Reserve the call's worst case and return it; None when it fits only once calls in flight
        settle (then `wait_settled` and ask again); raise SpendCapReached when it can never fit."""
        self.raise_if_never_fits(need)
        if self._refusal(need, in_flight=True) is not None:
            return None
        drawn, commits = self._drawable(need), self._commits(need)
        if need.owner is not None and drawn:  # the answer's reservation moves out of the commitment
            provider, left = self.committed[need.owner]
            self.committed[need.owner] = (provider, left - drawn)
            self._hold(provider, -drawn)
        if need.owner is not None and commits:
            self.committed[need.owner] = (need.provider, need.commits_usd)
        self._hold(need.provider, need.worst_usd + (need.commits_usd if commits else 0.0))
        self.calls_in_flight += 1
        return need.worst_usd

    async def reserve(self, need: SpendNeed) -> float | None:
        """`try_reserve`, as a lane awaits it: it never suspends, so nothing runs between the
        limiter's admission and the reservation."""
        return self.try_reserve(need)

    def hold(self, provider: str, usd: float) -> None:
        """Hold ``usd`` as one call in flight without asking the caps: a batch an earlier process
        submitted under them runs whatever they say now (`settle` ends the hold)."""
        self._hold(provider, usd)
        self.calls_in_flight += 1

    def release(self, owner: tuple[str, str]) -> None:
        """A job's execution ended: what its forced answers did not draw of its commitment goes back."""
        provider, left = self.committed.pop(owner, ("", 0.0))
        if left:
            self._hold(provider, -left)
            self._wake()

    def _hold(self, provider: str, usd: float) -> None:
        self.in_flight += usd
        self.in_flight_by_provider[provider] += usd

    def _drawable(self, need: SpendNeed) -> float:
        """How much of ``need``'s worst case its job's commitment covers."""
        if not need.draws or need.owner not in self.committed:
            return 0.0
        return min(need.worst_usd, self.committed[need.owner][1])

    def _commits(self, need: SpendNeed) -> bool:
        """Whether admitting ``need`` reserves a new commitment (a retried trace keeps the first)."""
        return need.new_work and need.commits_usd > 0 and need.owner is not None and need.owner not in self.committed

    def _fresh_usd(self, need: SpendNeed) -> float:
        """The money ``need`` asks of the caps beyond what is already reserved for it."""
        commits = need.commits_usd if self._commits(need) or (need.new_work and need.owner is None) else 0.0
        return need.worst_usd - self._drawable(need) + commits

    async def wait_settled(self) -> None:
        """Wait until some call in flight settles or a commitment is released (returns at once if
        nothing is held)."""
        if not self.calls_in_flight and not self.committed:
            return
        if self._settled is None:
            self._settled = anyio.Event()
        await self._settled.wait()

    def settle(self, provider: str, reserved: float, actual_usd: float) -> None:
        self.in_flight -= reserved
        self.in_flight_by_provider[provider] -= reserved
        self.calls_in_flight -= 1
        self.spent += actual_usd
        self.spent_by_provider[provider] += actual_usd
        self._wake()

    def charge(self, provider: str, usd: float) -> None:
        """Count spend known only after the fact: a lost worker's call, as its ledger record says."""
        self.spent += usd
        self.spent_by_provider[provider] += usd

    def _wake(self) -> None:
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def _refusal(self, need: SpendNeed, *, in_flight: bool) -> str | None:
        """Why ``need`` does not fit (counting the calls in flight at their worst, or not), or None."""
        # (counted, not read off the float sum, which may drift off zero; commitments are held too,
        # also between a trace's end and its answers' start, when no call may be in flight)
        in_flight = in_flight and (self.calls_in_flight > 0 or bool(self.committed))
        held = self.in_flight if in_flight else 0.0
        usd = self._fresh_usd(need)
        if self.max_usd is not None and self.spent + held + usd > self.max_usd:
            flight = f" + in flight ${held:.4f}" if in_flight else ""
            return (
                f"run.max_usd ${self.max_usd:.4f}: spent ${self.spent:.4f}{flight} "
                f"+ next call up to ${usd:.4f} would exceed it"
            )
        cap = self.provider_caps.get(need.provider)
        held_here = self.in_flight_by_provider[need.provider] if in_flight else 0.0
        if cap is not None and self.spent_by_provider[need.provider] + held_here + usd > cap:
            return f"providers.{need.provider}.max_usd ${cap:.4f} would be exceeded"
        return None


__all__ = ["WAIT_SPEND_CAP", "SpendGate", "SpendGuard", "SpendNeed"]
