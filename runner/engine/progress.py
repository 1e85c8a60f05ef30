"""The run's progress counters, and the `RunSnapshot` a display asks for.

The sweep updates the counters; a display calls `RunProgress.snapshot` (on the event loop, a few
times a second), which reads the lanes' own statistics. Nothing here draws.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from runner.engine.lane import Lane
from runner.engine.meter import RateMeter
from runner.engine.snapshots import LaneSnapshot, RunSnapshot
from runner.engine.spend import SpendGuard


@dataclass
class RunProgress:
    """What this process has done so far."""

    run_id: str
    jobs_total: int
    usd_cap: float | None
    usd_estimate: float | None
    jobs_done: int = 0  # skipped ones included
    jobs_skipped: int = 0
    jobs_failed: int = 0
    stopping: str | None = None
    started: float = field(default_factory=time.time)
    tokens_out: RateMeter = field(default_factory=lambda: RateMeter(window_s=10.0, buckets=20))

    def stop(self, reason: str) -> None:
        self.stopping = reason

    def on_tokens(self, _input: int, output: int) -> None:
        self.tokens_out.add(output, time.time())

    def snapshot(self, lanes: Mapping[str, Lane], spend: SpendGuard) -> RunSnapshot:
        now = time.time()
        recent = tuple(msg for lane in lanes.values() for msg in lane.counters.recent)[-5:]
        return RunSnapshot(
            run_id=self.run_id,
            started_at=self.started,
            now=now,
            jobs_total=self.jobs_total,
            jobs_done=self.jobs_done,
            jobs_skipped=self.jobs_skipped,
            calls_done=sum(lane.counters.attempts - lane.counters.in_flight for lane in lanes.values()),
            calls_in_flight=sum(lane.counters.in_flight for lane in lanes.values()),
            tokens_in=sum(lane.counters.input_tokens for lane in lanes.values()),
            tokens_out=sum(lane.counters.output_tokens for lane in lanes.values()),
            tokens_per_s=self.tokens_out.rate(now),
            usd_spent=spend.spent,
            usd_cap=self.usd_cap,
            usd_estimate=self.usd_estimate,
            lanes=tuple(lane_snapshot(name, lane) for name, lane in lanes.items()),
            stopping=self.stopping,
            recent=recent,
        )


def lane_snapshot(name: str, lane: Lane) -> LaneSnapshot:
    """One lane's counters and its limiter's statistics.

    In flight and allowed come from the same count (the limiter's slots), so the one is never
    more than the other.
    """
    limiter = lane.stats()
    return LaneSnapshot(
        name=name,
        in_flight=limiter.in_flight,
        waiting=limiter.waiting,
        concurrency_limit=limiter.concurrency_limit,
        concurrency_cap=limiter.concurrency_cap,
        waiting_for=limiter.waiting_for,
        rpm_limit=limiter.rpm_limit,
        tpm_limit=limiter.tpm_limit,
        requests_last_min=limiter.requests_last_min,
        tokens_last_min=limiter.tokens_last_min,
        paused_for_s=limiter.paused_for_s,
        n429=lane.counters.n429,
        retries=lane.counters.retries,
        errors=lane.counters.errors,
    )
