"""The facts displays read: RateMeter windows and RunSnapshot's derived figures."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.engine.eta import LanePlan, LaneWork, lane_time_left, run_time_left
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


def work(**fields: object) -> LaneWork:
    base: dict[str, object] = {
        "jobs_total": 100,
        "jobs_finished": 0,
        "jobs_running": 0,
        "calls": 0,
        "input_tokens": 0.0,
        "output_tokens": 0.0,
        "tokens_per_s": 0.0,
    }
    return LaneWork(**(base | fields))  # type: ignore[arg-type]


PLAN = LanePlan(jobs=100, calls=600.0, input_tokens=100_000.0, output_tokens=200_000.0)


def test_time_left_is_unknown_until_tokens_flow_and_zero_when_done() -> None:
    assert lane_time_left(work(jobs_running=32), PLAN) is None  # no pace yet: no number
    assert lane_time_left(work(jobs_finished=100), PLAN) == 0.0
    assert run_time_left([10.0, None]) is None and run_time_left([10.0, 30.0, 0.0]) == 30.0
    assert run_time_left([]) == 0.0


def test_time_left_starts_from_the_plan_not_from_jobs_done() -> None:
    # 2 s in, no job finished yet: the planned 200k tokens at the pace seen, 1k tok/s
    left = lane_time_left(work(jobs_running=32, output_tokens=2_000.0, tokens_per_s=1_000.0), PLAN)
    assert left is not None
    # the plan weighs 4 jobs' worth against 16 running jobs' worth observed (125 tokens each)
    per_job = (16 / 20) * (2_000 / 16) + (4 / 20) * 2_000
    assert left == pytest.approx((per_job * 100 - 2_000) / 1_000)


def test_time_left_follows_the_jobs_as_they_finish() -> None:
    # 50 jobs done on 100k tokens: each takes about 2k, as planned; then half as much as planned
    halfway = work(jobs_finished=50, output_tokens=100_000.0, tokens_per_s=1_000.0)
    assert lane_time_left(halfway, PLAN) == pytest.approx(100.0)
    cheap = LanePlan(jobs=100, calls=600.0, input_tokens=100_000.0, output_tokens=400_000.0)
    assert lane_time_left(halfway, cheap) == pytest.approx((50 / 54 * 2_000 + 4 / 54 * 4_000) * 100 / 1_000 - 100)
    assert lane_time_left(halfway, None) == pytest.approx(100.0)  # no estimate: what was seen alone


def test_time_left_respects_the_requests_per_minute_limit() -> None:
    # the pace looks fast (a full bucket at the start), but 300 calls left at 60/min take 5 min
    fast = work(jobs_finished=50, calls=300, output_tokens=100_000.0, tokens_per_s=100_000.0)
    assert lane_time_left(fast, PLAN) == pytest.approx(1.0)
    limited = dataclasses.replace(fast, rpm_limit=60, rpm_level=60.0)  # the bucket is full
    assert lane_time_left(limited, PLAN) == pytest.approx(300.0)


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
