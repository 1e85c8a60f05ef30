"""The run's progress counters, and the `RunSnapshot` a display asks for.

The sweep updates the counters (jobs started, finished, skipped, per lane); a display calls
`RunProgress.snapshot` (on the event loop, a few times a second), which reads the lanes' own
counters and limiter statistics, samples each lane's output for its pace, and estimates the time
left (`runner.engine.eta`). Nothing here draws.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runner.engine.eta import Group, Plan, lane_time_left, run_time_left
from runner.engine.eta import Lane as EtaLane
from runner.engine.lane import Lane
from runner.engine.limits import LaneStats
from runner.engine.snapshots import BatchSnapshot, LaneSnapshot, RunSnapshot
from runner.engine.spend import SpendGuard

PACE_WINDOW_S = 10.0  # a lane's pace is its output over about this many seconds


FINISHED_SAMPLE = 2000  # the durations of this many recent finished jobs per model size the rest


@dataclass
class ModelJobs:
    """One model's jobs on a lane, in this process."""

    total: int = 0  # resumed ones included
    skipped: int = 0  # complete in the ledger already
    running: dict[str, float] = field(default_factory=dict)  # job id -> when it started (monotonic)
    finished: int = 0  # done or failed for good
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=FINISHED_SAMPLE))  # seconds


@dataclass
class LaneJobs:
    """One lane's jobs, per model, and samples of its output for its pace."""

    models: dict[str, ModelJobs] = field(default_factory=dict)
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, output so far)

    def pace(self, now: float, output: float) -> float:
        """Output per second since the oldest sample kept (about `PACE_WINDOW_S` ago)."""
        samples = self.samples
        samples.append((now, output))
        while len(samples) > 2 and samples[1][0] <= now - PACE_WINDOW_S:
            samples.popleft()
        then, before = samples[0]
        return (output - before) / (now - then) if now - then > 0.2 else 0.0


@dataclass
class RunProgress:
    """What this process has done so far."""

    run_id: str
    jobs_total: int
    usd_cap: float | None
    usd_estimate: float | None
    usd_earlier: float = 0.0
    jobs_done: int = 0  # skipped ones included
    jobs_skipped: int = 0
    jobs_failed: int = 0
    stopping: str | None = None
    phase: str | None = None
    started: float = field(default_factory=time.time)
    plans: dict[tuple[str, str], Plan] = field(default_factory=dict)  # the estimate's, per (lane, model)
    lane_jobs: dict[str, LaneJobs] = field(default_factory=dict)
    # batch mode: the run's provider batches (their states are the progress); None in stream mode
    batch_source: Callable[[], tuple[BatchSnapshot, ...]] | None = None

    def stop(self, reason: str) -> None:
        self.stopping = reason

    def lanes_opened(self, totals: Mapping[str, Mapping[str, int]]) -> None:
        """The lanes are open (``totals``: jobs per lane and model): their pace is counted from now."""
        now = time.time()
        for name, models in totals.items():
            jobs = {model: ModelJobs(total=total) for model, total in models.items()}
            self.lane_jobs[name] = LaneJobs(models=jobs, samples=deque([(now, 0.0)]))
        self.phase = None

    def _jobs(self, lane: str, model: str) -> ModelJobs:
        return self.lane_jobs.setdefault(lane, LaneJobs()).models.setdefault(model, ModelJobs())

    def job_skipped(self, lane: str, model: str) -> None:
        self.jobs_done += 1
        self.jobs_skipped += 1
        self._jobs(lane, model).skipped += 1

    def job_started(self, lane: str, model: str, job_id: str) -> None:
        self._jobs(lane, model).running[job_id] = time.monotonic()

    def job_left(self, lane: str, model: str, job_id: str) -> None:
        """A job stopped running: finished, failed, or cut short by a stop."""
        self._jobs(lane, model).running.pop(job_id, None)

    def job_finished(self, lane: str, model: str, job_id: str, *, failed: bool = False) -> None:
        jobs = self._jobs(lane, model)
        jobs.finished += 1
        started = jobs.running.get(job_id)
        if started is not None:
            jobs.durations.append(time.monotonic() - started)
        if failed:
            self.jobs_failed += 1
        else:
            self.jobs_done += 1

    def snapshot(self, lanes: Mapping[str, Lane], spend: SpendGuard) -> RunSnapshot:
        now = time.time()
        snaps = tuple(self._lane(name, lane, spend, now) for name, lane in lanes.items())
        eta, complete = run_time_left([lane.time_left_s for lane in snaps]) if lanes else (None, False)
        batches = self.batch_source() if self.batch_source is not None else ()
        if self.batch_source is not None:  # a batch takes the provider up to 24 h: no pace says how long
            eta, complete = None, False
        counters = [lane.counters for lane in lanes.values()]
        return RunSnapshot(
            run_id=self.run_id,
            started_at=self.started,
            now=now,
            phase=self.phase,
            jobs_total=self.jobs_total,
            jobs_done=self.jobs_done,
            jobs_skipped=self.jobs_skipped,
            jobs_failed=self.jobs_failed,
            calls_done=sum(c.attempts - c.in_flight for c in counters),
            calls_in_flight=sum(c.in_flight for c in counters),
            tokens_in=sum(c.input_tokens for c in counters),
            tokens_out=sum(c.output_tokens for c in counters),
            tokens_per_s=sum(lane.tokens_per_s for lane in snaps),
            usd_spent=spend.spent,
            usd_earlier=self.usd_earlier,
            usd_cap=self.usd_cap,
            usd_estimate=self.usd_estimate,
            eta_s=eta,
            eta_complete=complete,
            lanes=snaps,
            stopping=self.stopping,
            recent=tuple(msg for c in counters for msg in c.recent)[-5:],
            failures=tuple(msg for c in counters for msg in c.failures)[-5:],
            batches=batches,
        )

    def _lane(self, name: str, lane: Lane, spend: SpendGuard, now: float) -> LaneSnapshot:
        stats = lane.stats()
        jobs = self.lane_jobs.setdefault(name, LaneJobs())
        by_model, by_job = lane.counters.streamed()
        pace = jobs.pace(now, lane.counters.output_tokens + sum(by_model.values()))
        clock = time.monotonic()
        groups = []
        for model, model_jobs in jobs.models.items():
            tally = lane.counters.tally(model)
            plan = self.plans.get((name, model))
            running = model_jobs.running
            groups.append(
                Group(
                    jobs_total=plan.jobs if plan is not None else model_jobs.total - model_jobs.skipped,
                    jobs_finished=model_jobs.finished,
                    durations=model_jobs.durations,
                    ages=[clock - started for started in running.values()],
                    streamed=[lane.counters.by_job.get(j, 0) + by_job.get(j, 0) for j in running],
                    plan=plan,
                    calls=tally.attempts,
                    tokens=tally.input_tokens + tally.output_tokens,
                )
            )
        limits = EtaLane(
            stats.max_concurrency, stats.rpm_limit, stats.rpm_level, stats.tpm_limit, stats.tpm_level, stats.burst_s
        )
        # a stopped lane runs nothing more: its jobs will not take any time
        left = 0.0 if lane.stopped is not None else lane_time_left(groups, limits)
        return lane_snapshot(name, lane, stats, pace=pace, time_left_s=left, spend_stopped=spend.reached is not None)


def _share(level: float | None, limit: int | None) -> float | None:
    return None if level is None or not limit else min(1.0, max(0.0, level / limit))


def lane_snapshot(
    name: str,
    lane: Lane,
    stats: LaneStats | None = None,
    *,
    pace: float = 0.0,
    time_left_s: float | None = None,
    spend_stopped: bool = False,
) -> LaneSnapshot:
    """One lane's counters and its limiter's statistics (``stats``: the lane's, `Lane.stats`).

    In flight and allowed come from the same count (the limiter's slots), so the one is never
    more than the other.
    """
    stats = stats or lane.stats()
    waiting_for = stats.waiting_for
    if spend_stopped and waiting_for is None:
        waiting_for = "spend cap"  # no new work starts: the lane only finishes what it started
    return LaneSnapshot(
        name=name,
        in_flight=stats.in_flight,
        waiting=stats.waiting,
        concurrency_limit=stats.concurrency_limit,
        concurrency_cap=stats.concurrency_cap,
        rpm_limit=stats.rpm_limit,
        tpm_limit=stats.tpm_limit,
        rpm_used=_share(stats.rpm_level, stats.rpm_limit),
        tpm_used=_share(stats.tpm_level, stats.tpm_limit),
        requests_last_min=stats.requests_last_min,
        tokens_last_min=stats.tokens_last_min,
        tokens_per_s=pace,
        paused_for_s=stats.paused_for_s,
        waiting_for=waiting_for,
        n429=lane.counters.n429,
        retries=lane.counters.retries,
        errors=lane.counters.errors,
        errors_by_kind=tuple(sorted(lane.counters.errors_by_kind.items(), key=lambda kv: (-kv[1], kv[0]))),
        failed_calls=lane.counters.failed_calls,
        time_left_s=time_left_s,
    )
