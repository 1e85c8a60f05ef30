"""How long a run has left: from the estimate's planned work and the pace observed so far.

Counting jobs alone misleads early on: the first jobs finish late (each one streams a trace and
then its answers) while every worker is already part-way through one, so "elapsed / jobs done x
jobs left" starts 2-3x too high. Instead each lane is a set of workers (``max_concurrency``)
that each run one job at a time, and its time left is what its workers still have to do:

- **a job's duration** (`Group`): the mean of the model's finished jobs, weighed against a prior
  until a few have finished (`PRIOR_JOBS`; the first to finish are the short ones). The prior is
  the estimate's expected calls per job (`Plan`) at the seconds per planned call the lane's
  finished jobs took (a call's latency sets a job's time more than its tokens do); before any job
  has finished, the expected output tokens per job at the pace the running jobs stream (tokens
  still streaming count as they arrive, so it is known within a second of the first token). Each
  model has its own (one model's jobs run before the next one's; their sizes differ).
- **the workers' time**: a running job has what a job takes less its age still to go (at least
  `LEAST_LEFT` of a job: its forced answers come last); the jobs not started need a whole one each.
  The lane is done after ``(running jobs' rest + unstarted x duration) / workers``, and not
  before its longest running job is.
- **limits**: a lane at its requests/min or tokens/min limit cannot go faster than the limit
  (a bucket that starts full lets the first minute run fast): calls and tokens left beyond what
  the buckets still hold, at the limit's rate, bound the time.

Time, not tokens, is the unit: a forced answer costs a call's latency for a few tokens, and a
model that reasons out of sight streams nothing until it answers. The run's time left is its
slowest lane's. bench/eta.py measures how close it comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# how many finished jobs of a model weigh as much as the prior for its duration
PRIOR_JOBS = 4.0
# a running job has at least this share of a job still to go (its forced answers come last)
LEAST_LEFT = 0.1
# the streaming pace counts once the running jobs have this share of their planned output
MIN_STREAMED = 0.02


@dataclass(frozen=True)
class Plan:
    """What the estimate expects of one model's jobs on a lane in this process."""

    jobs: int
    calls: float  # expected, all jobs
    input_tokens: float
    output_tokens: float
    # the output streams as it is generated (fidelity raw or content): tokens received so far are
    # the job's progress; a hidden or summarised trace streams little or nothing of what it bills
    streams: bool = True

    def per_job(self) -> tuple[float, float, float]:
        """Expected (calls, input tokens, output tokens) per job."""
        n = max(1, self.jobs)
        return self.calls / n, self.input_tokens / n, self.output_tokens / n


@dataclass(frozen=True)
class Group:
    """One model's jobs on a lane in this process: what is done and what runs."""

    jobs_total: int  # jobs this process has to run (resumed ones excluded)
    jobs_finished: int  # done or failed for good
    durations: Sequence[float] = ()  # seconds each finished job took (a recent sample)
    ages: Sequence[float] = ()  # seconds each running job has run
    streamed: Sequence[float] = ()  # output tokens each running job has so far
    plan: Plan | None = None
    calls: int = 0  # attempts started
    tokens: float = 0.0  # input and output tokens settled

    @property
    def planned_tokens(self) -> float | None:
        """The estimate's expected output tokens per job."""
        return self.plan.per_job()[2] if self.plan is not None else None

    @property
    def planned_calls(self) -> float | None:
        """The estimate's expected calls per job."""
        return self.plan.per_job()[0] if self.plan is not None else None

    def planned(self, unit: str) -> float | None:
        """The estimate's expected calls or output tokens per job."""
        return self.planned_calls if unit == "calls" else self.planned_tokens

    @property
    def unstarted(self) -> int:
        return max(0, self.jobs_total - self.jobs_finished - len(self.ages))


@dataclass(frozen=True)
class Lane:
    """A lane's workers and the limits it must keep."""

    workers: int
    rpm_limit: int | None = None
    rpm_level: float | None = None
    tpm_limit: int | None = None
    tpm_level: float | None = None
    burst_s: float = 60.0  # seconds of each limit a bucket lets go at once (`LaneStats.burst_s`)


Rate = tuple[str, float]  # seconds per planned "calls" or "tokens"


def _prior_rate(groups: Sequence[Group]) -> Rate | None:
    """How long a job takes per unit of its plan: seconds per planned call from the lane's finished
    jobs (a call's latency, more than its tokens, sets a job's time: a model with short answers still
    waits for each), else seconds per planned output token from the pace the running jobs stream at
    (None: no job finished and too little has streamed to tell)."""
    seconds = planned = 0.0
    for group in groups:
        if group.planned_calls:
            seconds += sum(group.durations)
            planned += group.planned_calls * len(group.durations)
    if planned > 0:
        return "calls", seconds / planned
    streaming = [g for g in groups if g.plan is None or g.plan.streams]
    streamed, age = sum(sum(g.streamed) for g in streaming), sum(sum(g.ages) for g in streaming)
    expected = sum((g.planned_tokens or 0.0) * len(g.ages) for g in streaming)
    # the first tenths of a second are the time to the first token: no pace yet
    return ("tokens", age / streamed) if streamed > 0 and streamed >= MIN_STREAMED * expected else None


def duration(group: Group, rate: Rate | None) -> float | None:
    """What one of the group's jobs takes, in seconds (None: nothing to go on yet)."""
    mean = sum(group.durations) / len(group.durations) if group.durations else None
    planned = group.planned(rate[0]) if rate is not None else None
    prior = planned * rate[1] if planned and rate is not None else None
    if prior is None:
        return mean
    if mean is None:
        return prior
    weight = group.jobs_finished / (group.jobs_finished + PRIOR_JOBS)
    return weight * mean + (1.0 - weight) * prior


def _limit_bound(left: float, limit: int | None, level: float | None, burst_s: float) -> float:
    """Seconds the limit needs for ``left`` more, after the room its bucket still has (a bucket
    holds ``burst_s`` seconds of the limit)."""
    if not limit or left <= 0:
        return 0.0
    room = max(0.0, limit * min(burst_s, 60.0) / 60.0 - (level or 0.0))
    return max(0.0, left - room) * 60.0 / limit


def _still_to_come(group: Group) -> tuple[float, float]:
    """Calls and tokens (input and output) the group's jobs still need, for the limits."""
    done = group.jobs_finished + 0.5 * len(group.ages)  # a running job counts half
    per_job = (group.calls / done, group.tokens / done) if done else (0.0, 0.0)
    if group.plan is not None and not done:
        calls, input_tokens, output_tokens = group.plan.per_job()
        per_job = (calls, input_tokens + output_tokens)
    return (
        max(0.0, per_job[0] * group.jobs_total - group.calls),
        max(0.0, per_job[1] * group.jobs_total - group.tokens),
    )


def lane_time_left(groups: Sequence[Group], lane: Lane) -> float | None:
    """Seconds until a lane's jobs are done; 0.0 when none are left, None until there is a pace."""
    if all(g.jobs_finished >= g.jobs_total for g in groups):
        return 0.0
    rate = _prior_rate(groups)
    work = longest = 0.0
    for group in groups:
        if group.jobs_finished >= group.jobs_total:
            continue
        each = duration(group, rate)
        if each is None:
            return None
        rests = [max(each - age, LEAST_LEFT * each) for age in group.ages]
        work += sum(rests) + group.unstarted * each
        longest = max([longest, *rests])
    calls = tokens = 0.0
    for group in groups:
        more_calls, more_tokens = _still_to_come(group)
        calls, tokens = calls + more_calls, tokens + more_tokens
    return max(
        work / max(1, lane.workers),
        longest,
        _limit_bound(calls, lane.rpm_limit, lane.rpm_level, lane.burst_s),
        _limit_bound(tokens, lane.tpm_limit, lane.tpm_level, lane.burst_s),
    )


def run_time_left(lanes: list[float | None]) -> tuple[float | None, bool]:
    """The run's time left, its slowest lane's, and whether every lane could tell: a lane whose
    models reason out of sight has no pace until a job finishes, and the time of the others is
    then only a lower bound. (None, False) while no lane can tell."""
    known = [left for left in lanes if left is not None]
    if not known:
        return (None, False) if lanes else (0.0, True)
    return max(known), len(known) == len(lanes)
