"""How long a run has left: from the estimate's planned work and the rates observed so far.

Counting jobs alone misleads early on: the first jobs finish late (each one streams a trace and
then its answers) while every worker is already half-way through one, so "elapsed / jobs done x
jobs left" starts 2-3x too high. Instead each lane's time left is its *work* left over the pace
it keeps:

- **work** is output tokens (what a stream takes time to produce). A lane's jobs need
  ``per_job x jobs`` in all. ``per_job`` starts as the estimate's expected tokens per job
  (`LanePlan`) and moves to what the lane's jobs have used so far as they finish; running jobs
  count as half done (they started at all moments of their course). Tokens still streaming count
  as they arrive, so the pace is known within a second of the first token, not after a first call ends.
- **pace** is the lane's output tokens per second over the last seconds (`RunProgress` samples it).
- **limits**: a lane at its requests/min or tokens/min limit cannot go faster than the limit,
  whatever its recent pace was (a bucket that starts full lets the first minute run fast):
  calls and tokens left beyond what the buckets still hold, at the limit's rate, bound the time.

The run's time left is its slowest lane's. See bench/eta.py for how close it comes.
"""

from __future__ import annotations

from dataclasses import dataclass

# how many jobs' worth of observation count as much as the estimate's prior
PRIOR_JOBS = 4.0
# a running job counts as this much of a job done (they are spread over their course)
RUNNING_SHARE = 0.5


@dataclass(frozen=True)
class LanePlan:
    """What the estimate expects of a lane's jobs in this process ("expected", not the high bound)."""

    jobs: int
    calls: float
    input_tokens: float
    output_tokens: float


@dataclass(frozen=True)
class LaneWork:
    """What a lane has done so far in this process, and its limits now."""

    jobs_total: int  # jobs this process has to run on the lane (resumed ones excluded)
    jobs_finished: int  # done or failed for good
    jobs_running: int
    calls: int  # attempts started
    input_tokens: float
    output_tokens: float  # settled, plus what the attempts streaming now have received
    tokens_per_s: float  # output tokens per second, recently
    rpm_limit: int | None = None
    rpm_level: float | None = None
    tpm_limit: int | None = None
    tpm_level: float | None = None


def _per_job(observed_total: float, jobs_seen: float, planned_per_job: float | None) -> float | None:
    """What one job takes: the estimate's figure, moved toward the observed one as jobs finish."""
    observed = observed_total / jobs_seen if jobs_seen > 0 else None
    if planned_per_job is None:
        return observed
    if observed is None:
        return planned_per_job
    weight = jobs_seen / (jobs_seen + PRIOR_JOBS)
    return weight * observed + (1.0 - weight) * planned_per_job


def _limit_bound(left: float, limit: int | None, level: float | None) -> float:
    """Seconds the limit needs for ``left`` more, after the room its bucket still has."""
    if not limit or left <= 0:
        return 0.0
    room = limit - (level or 0.0)
    return max(0.0, left - room) * 60.0 / limit


def lane_time_left(work: LaneWork, plan: LanePlan | None) -> float | None:
    """Seconds until the lane's jobs are done; 0.0 when none are left, None until a pace is seen."""
    jobs_left = work.jobs_total - work.jobs_finished
    if jobs_left <= 0:
        return 0.0
    seen = work.jobs_finished + RUNNING_SHARE * work.jobs_running

    def planned(total: float) -> float | None:
        return total / plan.jobs if plan is not None and plan.jobs > 0 else None

    out_per_job = _per_job(work.output_tokens, seen, planned(plan.output_tokens) if plan else None)
    if out_per_job is None or work.tokens_per_s <= 0:
        return None
    out_left = max(0.0, out_per_job * work.jobs_total - work.output_tokens)
    by_pace = out_left / work.tokens_per_s
    calls_per_job = _per_job(work.calls, seen, planned(plan.calls) if plan else None) or 0.0
    in_per_job = _per_job(work.input_tokens, seen, planned(plan.input_tokens) if plan else None) or 0.0
    calls_left = calls_per_job * work.jobs_total - work.calls
    tokens_left = (in_per_job + out_per_job) * work.jobs_total - work.input_tokens - work.output_tokens
    by_rpm = _limit_bound(calls_left, work.rpm_limit, work.rpm_level)
    by_tpm = _limit_bound(tokens_left, work.tpm_limit, work.tpm_level)
    return max(by_pace, by_rpm, by_tpm)


def run_time_left(lanes: list[float | None]) -> float | None:
    """The run's time left: its slowest lane's (None while a lane with work has no pace yet)."""
    if any(left is None for left in lanes):
        return None
    return max((left for left in lanes if left is not None), default=0.0)
