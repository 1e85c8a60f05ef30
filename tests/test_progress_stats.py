"""The facts displays read: RateMeter windows and RunSnapshot's derived figures."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.engine.eta import Group, Plan, duration, lane_time_left, run_time_left
from runner.engine.eta import Lane as EtaLane
from runner.engine.meter import RateMeter
from runner.engine.snapshots import LaneSnapshot, RunSnapshot


def run(**fields: object) -> RunSnapshot:
    base: dict[str, object] = {"run_id": "r", "started_at": 1000.0, "now": 1100.0, "jobs_total": 100}
    return RunSnapshot(**(base | fields))  # type: ignore[arg-type]


def test_meter_counts_only_the_window() -> None:
    meter = RateMeter(window_s=60.0, buckets=60)
    meter.add(10, now=0.0)
    meter.add(5, now=30.0)
    assert meter.total(now=59.0) == 15
    assert meter.total(now=60.5) == 5  # the first addition's slot has left the window
    assert meter.total(now=200.0) == 0


def test_meter_rate_is_right_before_a_full_window() -> None:
    meter = RateMeter(window_s=10.0, buckets=10)
    assert meter.rate(now=0.0) == 0.0
    meter.add(100, now=0.0)
    meter.add(100, now=2.0)
    # two seconds in: 200 tokens over 2 s, not over the 10 s window
    assert meter.rate(now=2.0) == pytest.approx(100.0)
    meter.add(800, now=9.5)
    assert meter.rate(now=9.5) == pytest.approx(1000 / 9.5)
    assert meter.rate(now=10.5) == pytest.approx(900 / 10.0)


def test_meter_rate_on_first_instant_uses_one_slot() -> None:
    meter = RateMeter(window_s=10.0, buckets=10)
    meter.add(50, now=3.0)
    assert meter.rate(now=3.0) == pytest.approx(50.0)  # 50 over one 1 s slot, never a division by zero


def test_meter_memory_stays_bounded() -> None:
    meter = RateMeter(window_s=1.0, buckets=4)
    for i in range(10_000):
        meter.add(1, now=i / 1000)
    assert meter.total(now=9.999) == pytest.approx(1000, abs=250)  # exact to one 0.25 s slot
    assert len(meter._slots) <= 5


@pytest.mark.parametrize(("window", "buckets"), [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_meter_rejects_bad_shape(window: float, buckets: int) -> None:
    with pytest.raises(ValueError, match="window_s and buckets must be positive"):
        RateMeter(window_s=window, buckets=buckets)


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 1000)), max_size=50), st.integers(0, 400))
def test_meter_total_matches_a_plain_sum(adds: list[tuple[int, int]], now: int) -> None:
    # whole-second times on 1 s slots: the bucketed count must equal the naive one
    meter = RateMeter(window_s=60.0, buckets=60)
    for t, n in sorted(adds):
        if t <= now:
            meter.add(n, now=float(t))
    expected = sum(n for t, n in adds if now - 60 < t <= now)
    assert meter.total(now=float(now)) == expected


PLAN = Plan(jobs=100, calls=600.0, input_tokens=100_000.0, output_tokens=200_000.0)  # 2k tokens a job
LANE = EtaLane(workers=10)


def test_time_left_is_unknown_until_there_is_a_pace_and_zero_when_done() -> None:
    starting = Group(jobs_total=100, jobs_finished=0, ages=[0.3] * 10, streamed=[0.0] * 10, plan=PLAN)
    assert lane_time_left([starting], LANE) is None  # nothing streamed yet: no number
    assert lane_time_left([Group(jobs_total=100, jobs_finished=100, plan=PLAN)], LANE) == 0.0
    assert run_time_left([10.0, 30.0, 0.0]) == (30.0, True)
    assert run_time_left([10.0, None]) == (10.0, False)  # a lower bound: a lane cannot tell yet
    assert run_time_left([None]) == (None, False) and run_time_left([]) == (0.0, True)


def test_before_any_job_finishes_the_plan_is_timed_at_the_streaming_pace() -> None:
    # 10 jobs 2 s in, 200 tokens each: 100 tokens/s a job, so a planned 2k-token job takes 20 s
    group = Group(jobs_total=100, jobs_finished=0, ages=[2.0] * 10, streamed=[200.0] * 10, plan=PLAN)
    assert duration(group, ("tokens", 2.0 / 200.0)) == pytest.approx(20.0)
    # 10 workers: the running jobs' 18 s each, then 90 jobs of 20 s
    assert lane_time_left([group], LANE) == pytest.approx((10 * 18.0 + 90 * 20.0) / 10)


def test_finished_jobs_take_over_from_the_plan() -> None:
    # 20 jobs finished in 5 s each (6 planned calls each: 5/6 s a planned call)
    finished = Group(jobs_total=100, jobs_finished=20, durations=[5.0] * 20, ages=[1.0] * 10, plan=PLAN)
    assert duration(finished, ("calls", 5.0 / 6)) == pytest.approx(5.0)
    assert lane_time_left([finished], LANE) == pytest.approx((10 * 4.0 + 70 * 5.0) / 10)
    # the lane's second model has not started: its jobs are timed at the first one's seconds per
    # planned call (twice the calls: twice the time), whatever their tokens
    twice = Plan(jobs=100, calls=1200, input_tokens=0, output_tokens=1)
    second = Group(jobs_total=100, jobs_finished=0, plan=twice)
    assert lane_time_left([finished, second], LANE) == pytest.approx((10 * 4.0 + 70 * 5.0 + 100 * 10.0) / 10)


def test_a_model_that_reasons_out_of_sight_waits_for_a_finished_job() -> None:
    hidden = Plan(jobs=100, calls=600.0, input_tokens=0.0, output_tokens=200_000.0, streams=False)
    group = Group(jobs_total=100, jobs_finished=0, ages=[5.0] * 10, streamed=[3.0] * 10, plan=hidden)
    assert lane_time_left([group], LANE) is None  # a few answer tokens are no pace
    done = Group(jobs_total=100, jobs_finished=4, durations=[30.0] * 4, ages=[5.0] * 10, plan=hidden)
    assert lane_time_left([done], LANE) == pytest.approx((10 * 25.0 + 86 * 30.0) / 10)


def test_the_longest_running_job_bounds_the_lane() -> None:
    # three jobs left, all running, with plenty of workers: the lane ends with the longest one
    group = Group(jobs_total=10, jobs_finished=7, durations=[10.0] * 7, ages=[1.0, 5.0, 9.0], plan=PLAN)
    assert lane_time_left([group], EtaLane(workers=64)) == pytest.approx(9.0)  # 10 s a job, the youngest is 1 s in


def test_time_left_respects_the_requests_per_minute_limit() -> None:
    # the jobs look quick (a full bucket at the start), but 300 calls left at 60/min take 5 min
    group = Group(jobs_total=100, jobs_finished=50, durations=[0.1] * 50, plan=PLAN, calls=300)
    assert lane_time_left([group], LANE) == pytest.approx(50 * 0.1 / 10)
    limited = EtaLane(workers=10, rpm_limit=60, rpm_level=0.5, burst_s=0.5)  # the bucket (half a second's) is full
    assert lane_time_left([group], limited) == pytest.approx(300.0)


def test_fraction_and_lane_sums() -> None:
    lanes = (LaneSnapshot(name="a", n429=2, retries=3), LaneSnapshot(name="b", n429=1, retries=0))
    snap = run(jobs_done=25, lanes=lanes)
    assert snap.fraction_done == 0.25
    assert (snap.n429, snap.retries) == (3, 3)
    assert run(jobs_total=0).fraction_done == 1.0
    assert run(started_at=2000.0).elapsed_s == 0.0  # a clock step back never shows negative time


def test_snapshot_is_frozen_and_round_trips() -> None:
    snap = run(lanes=(LaneSnapshot(name="sim", in_flight=3, rpm_limit=600),), recent=("429 from sim",))
    with pytest.raises(AttributeError):
        snap.jobs_done = 5  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(snap), type=RunSnapshot) == snap
