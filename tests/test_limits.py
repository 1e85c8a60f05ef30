"""LaneLimiter on virtual time: buckets, refunds, header re-sync, pauses, AIMD, cancellation.

The tests of a bucket's mechanics give the lane a whole minute's burst (``burst_s=MINUTE``), so
their numbers stay those of a minute; pacing within the minute has tests of its own.

Every test runs in an event loop whose clock jumps straight to the next timer when nothing is
ready (trio's autojump MockClock, for asyncio), so an hour of waiting passes at once and the
times asserted are virtual, never wall time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from runner.engine.limits import GUARD_S, MIN_BURST_S, WIDEN_AFTER_S, LaneLimiter, LaneStats, Reservation
from runner.types import RateLimitReading

T = TypeVar("T")
MINUTE = 60.0  # burst_s for a lane that lets a whole minute's limit go at once (bucket mechanics)


class _JumpSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._vloop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            # no timer: only a worker thread (asyncio.to_thread) can still wake the loop
            ready = super().select(10.0)
            if not ready:
                raise RuntimeError("deadlock: every task waits and no timer is set")
            return ready
        self._vloop.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock starts at 0 and autojumps to the next timer when idle."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpSelector(self))

    def time(self) -> float:
        return self.now


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})


def reading(**kw: Any) -> RateLimitReading:
    return RateLimitReading(**kw)


def test_request_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    async def main() -> list[float]:
        lim = LaneLimiter(burst_s=MINUTE, rpm=60, tpm=None, max_concurrency=1000)
        times = []
        for _ in range(70):
            (await lim.acquire(0)).release()
            times.append(anyio.current_time())
        return times

    times = run(main)
    assert times[59] == 0.0
    assert times[60] == pytest.approx(1.0)
    assert times[69] == pytest.approx(10.0)


def test_token_bucket_waits_for_the_level_to_drain() -> None:
    async def main() -> float:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=600, max_concurrency=10)  # drains 10 tokens/s
        (await lim.acquire(400)).release()
        (await lim.acquire(400)).release()
        return anyio.current_time()

    assert run(main) == pytest.approx(20.0)


def test_settle_refunds_the_unused_part_at_once() -> None:
    async def main() -> tuple[float, float | None]:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=600, max_concurrency=10)
        r = await lim.acquire(600)
        r.settle(100)
        await lim.acquire(500)
        return anyio.current_time(), lim.stats().tpm_level

    assert run(main) == (0.0, 600.0)


def test_a_refund_wakes_a_head_waiting_for_tokens() -> None:
    async def main() -> float:
        lim = LaneLimiter(burst_s=MINUTE, rpm=600, tpm=600, max_concurrency=10)
        held = await lim.acquire(600)
        at: list[float] = []

        async def waiter() -> None:
            (await lim.acquire(100)).release()
            at.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)  # 10 s until 100 tokens drain
            await anyio.sleep(2.0)
            held.release()  # a freed slot: no use to a call waiting for tokens
            await anyio.sleep(1.0)
            assert at == []
            held.settle(100)  # 500 tokens come back
        return at[0]

    assert run(main) == pytest.approx(3.0)


def test_settle_charges_more_when_usage_exceeds_the_reservation() -> None:
    async def main() -> float:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=600, max_concurrency=10)
        (await lim.acquire(100)).settle(900)  # level 900: 300 over the limit
        await lim.acquire(60)
        return anyio.current_time()

    assert run(main) == pytest.approx(36.0)  # (900 + 60 - 600) / 10 per s


def test_settle_is_idempotent_and_releases_the_slot_once() -> None:
    async def main() -> tuple[int, float | None]:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=1000, max_concurrency=2)
        r = await lim.acquire(300)
        r.settle(100)
        r.settle(100)
        r.release()
        with await lim.acquire(10) as r2:
            assert isinstance(r2, Reservation)
        return lim.stats().in_flight, lim.stats().tpm_level

    assert run(main) == (0, 110.0)


def test_a_request_larger_than_the_bucket_waits_for_an_empty_bucket() -> None:
    async def main() -> float:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=600, max_concurrency=10)
        (await lim.acquire(300)).release()
        (await lim.acquire(5000)).release()
        return anyio.current_time()

    assert run(main) == pytest.approx(30.0)


def test_concurrency_cap_admits_in_arrival_order_as_slots_free() -> None:
    async def main() -> list[tuple[int, float]]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=2)
        order: list[tuple[int, float]] = []

        async def call(i: int) -> None:
            with await lim.acquire(1):
                order.append((i, anyio.current_time()))
                await anyio.sleep(1.0)

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(call, i)
                await anyio.sleep(0.01)
        return order

    order = run(main)
    assert [i for i, _ in order] == [0, 1, 2, 3, 4]
    assert [round(t, 2) for _, t in order] == [0.0, 0.01, 1.0, 1.01, 2.0]


def test_a_large_head_is_not_overtaken_by_small_requests() -> None:
    async def main() -> list[str]:
        lim = LaneLimiter(rpm=None, tpm=600, max_concurrency=10)
        (await lim.acquire(600)).release()
        done: list[str] = []

        async def call(name: str, tokens: int) -> None:
            (await lim.acquire(tokens)).release()
            done.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "big", 500)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(call, "small", 10)
        return done

    assert run(main) == ["big", "small"]


@pytest.mark.parametrize("who", ["head", "middle"])
def test_cancelled_waiter_leaves_nothing_reserved(who: str) -> None:
    async def main() -> tuple[list[str], Any]:
        lim = LaneLimiter(rpm=None, tpm=600, max_concurrency=10)
        (await lim.acquire(600)).release()
        done: list[str] = []

        async def call(name: str, tokens: int, patience: float) -> None:
            with anyio.move_on_after(patience):
                (await lim.acquire(tokens)).release()
                done.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a", 300, 5.0 if who == "head" else math.inf)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(call, "b", 300, 5.0 if who == "middle" else math.inf)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(call, "c", 300, math.inf)
        return done, lim.stats()

    done, stats = run(main)
    assert done == (["b", "c"] if who == "head" else ["a", "c"])
    assert stats.in_flight == 0 and stats.waiting == 0
    assert stats.admitted == 3


def test_cancelled_head_passes_its_turn_on() -> None:
    async def main() -> list[tuple[str, float]]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=1)
        held = await lim.acquire(1)
        admitted: list[tuple[str, float]] = []

        async def waiter(name: str, patience: float) -> None:
            with anyio.move_on_after(patience):
                (await lim.acquire(1)).release()
                admitted.append((name, anyio.current_time()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "head", 0.5)  # gives up while at the head of the queue
            await anyio.lowlevel.checkpoint()
            tg.start_soon(waiter, "next", math.inf)
            await anyio.sleep(1.0)
            held.release()
        assert lim.stats().waiting == 0
        return admitted

    [(name, at)] = run(main)
    assert name == "next" and at == pytest.approx(1.0)


def test_429_pauses_the_lane_for_retry_after_and_halves_concurrency() -> None:
    async def main() -> tuple[float, int, int]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=8)
        lim.on_rate_limited(2.5)
        lim.on_rate_limited(0.5)  # same burst: neither shortens the pause nor halves again
        assert lim.stats().paused_for_s == pytest.approx(2.5)
        (await lim.acquire(1)).release()
        return anyio.current_time(), lim.stats().concurrency_limit, lim.stats().n429

    at, cap, n429 = run(main)
    assert at == pytest.approx(2.5) and (cap, n429) == (4, 2)


def test_429_without_retry_after_pauses_for_the_default() -> None:
    async def main() -> float:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=8, default_pause_s=3.0)
        lim.on_rate_limited(None)
        (await lim.acquire(1)).release()
        return anyio.current_time()

    assert run(main) == pytest.approx(3.0)


def test_aimd_decreases_per_burst_and_recovers_additively() -> None:
    async def main() -> list[int]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=16, decrease_cooldown_s=1.0)
        seen = []
        for _ in range(3):
            lim.on_server_error()  # one burst
        seen.append(lim.stats().concurrency_limit)
        await anyio.sleep(1.0)
        lim.on_server_error()
        await anyio.sleep(1.0)
        lim.on_server_error()
        await anyio.sleep(1.0)
        lim.on_server_error()
        await anyio.sleep(1.0)
        lim.on_server_error()
        seen.append(lim.stats().concurrency_limit)
        for _ in range(3):
            lim.on_success()
        seen.append(lim.stats().concurrency_limit)
        for _ in range(100):
            lim.on_success()
        seen.append(lim.stats().concurrency_limit)
        return seen

    assert run(main) == [8, 1, 4, 16]


def test_success_wakes_a_waiter_blocked_on_the_reduced_cap() -> None:
    async def main() -> float:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=2)
        lim.on_server_error()  # cap 1
        held = await lim.acquire(1)
        at: list[float] = []

        async def waiter() -> None:
            (await lim.acquire(1)).release()
            at.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(2.0)
            lim.on_success()  # cap back to 2 while `held` is still out
        held.release()
        return at[0]

    assert run(main) == pytest.approx(2.0)


def test_limits_are_learned_from_headers() -> None:
    async def main() -> Any:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=100)
        r = await lim.acquire(50)
        lim.observe(reading(limit_requests=120, remaining_requests=100, limit_tokens=6000, remaining_tokens=5000))
        r.settle(50)
        return lim.stats()

    s = run(main)
    assert (s.rpm_limit, s.tpm_limit) == (120, 6000)
    assert s.rpm_level == 20.0 and s.tpm_level == 1000.0


def test_learned_limit_paces_what_follows() -> None:
    async def main() -> float:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=None, max_concurrency=100)
        r = await lim.acquire(0)
        r.observe(reading(limit_requests=60, remaining_requests=59))
        r.release()
        for _ in range(60):
            (await lim.acquire(0)).release()
        return anyio.current_time()

    assert run(main) == pytest.approx(1.0)  # 1 + 59 fill the bucket, the 61st waits 1 s


def test_learning_keeps_the_calls_already_in_flight() -> None:
    async def main() -> list[float | None]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=100)
        first = await lim.acquire(10)
        await lim.acquire(10)
        await lim.acquire(10)
        levels = []
        # the provider has counted only `first`: the two others are still on the wire
        first.observe(reading(limit_requests=100, remaining_requests=99))
        levels.append(lim.stats().rpm_level)
        # a key shared with another client: the provider's level wins when higher
        first.observe(reading(limit_requests=100, remaining_requests=80))
        levels.append(lim.stats().rpm_level)
        return levels

    assert run(main) == [3.0, 20.0]


def test_learning_late_charges_at_most_one_full_bucket() -> None:
    async def main() -> float | None:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=100)
        for _ in range(500):
            (await lim.acquire(0)).release()
        lim.observe(reading(limit_requests=60, remaining_requests=60))
        return lim.stats().rpm_level

    assert run(main) == 60.0


def test_a_raised_limit_wakes_the_waiting_head_at_once() -> None:
    async def main() -> float:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=None, max_concurrency=100)
        lim.observe(reading(limit_requests=60, remaining_requests=60))
        for _ in range(60):
            (await lim.acquire(0)).release()
        at: list[float] = []

        async def waiter() -> None:
            (await lim.acquire(0)).release()
            at.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)  # would wait 1 s at 60 rpm
            await anyio.sleep(0.25)
            lim.observe(reading(limit_requests=6000))  # the key moved up a tier
        return at[0]

    assert run(main) == pytest.approx(0.25)


def test_readings_only_raise_the_level_and_never_double_count() -> None:
    async def main() -> list[float | None]:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=1000, max_concurrency=10)
        a = await lim.acquire(100)
        await lim.acquire(100)
        levels = []
        a.observe(reading(limit_tokens=1000, remaining_tokens=900))  # provider saw `a` only
        levels.append(lim.stats().tpm_level)
        lim.observe(reading(limit_tokens=1000, remaining_tokens=1000))  # stale: never lowers
        levels.append(lim.stats().tpm_level)
        a.observe(reading(limit_tokens=1000, remaining_tokens=700))  # someone else used 100
        levels.append(lim.stats().tpm_level)
        lim.observe(reading(limit_tokens=1000, remaining_tokens=100))  # provider says 900 used
        levels.append(lim.stats().tpm_level)
        return levels

    assert run(main) == [200.0, 200.0, 300.0, 900.0]


def test_calls_reaching_the_provider_out_of_order_are_not_counted_twice() -> None:
    async def main() -> float | None:
        lim = LaneLimiter(burst_s=MINUTE, rpm=600, tpm=None, max_concurrency=100)
        held = [await lim.acquire(0) for _ in range(50)]
        # the first call admitted arrived last: the provider had counted all 50 before it
        held[0].observe(reading(limit_requests=600, remaining_requests=550))
        return lim.stats().rpm_level

    assert run(main) == 50.0


def test_a_reservation_reading_is_drained_for_its_age() -> None:
    async def main() -> list[float | None]:
        lim = LaneLimiter(burst_s=MINUTE, rpm=None, tpm=600, max_concurrency=10)  # drains 10 tokens/s
        a = await lim.acquire(100)
        await anyio.sleep(5.0)  # our level: 100 - 50
        a.observe(reading(limit_tokens=600, remaining_tokens=300))  # at most 300 - 50 by now
        levels = [lim.stats().tpm_level]
        lim.observe(reading(limit_tokens=600, remaining_tokens=200))  # taken as current
        levels.append(lim.stats().tpm_level)
        return levels

    assert run(main) == [250.0, 400.0]


def test_provider_limit_below_the_configured_one_wins() -> None:
    async def main() -> tuple[int | None, int | None]:
        lim = LaneLimiter(rpm=1000, tpm=5000, max_concurrency=10)
        lim.observe(reading(limit_requests=500, limit_tokens=90000))
        return lim.stats().rpm_limit, lim.stats().tpm_limit

    assert run(main) == (500, 5000)


def test_reset_alone_gives_the_level() -> None:
    async def main() -> float | None:
        lim = LaneLimiter(rpm=None, tpm=6000, max_concurrency=10)  # refills 100 tokens/s
        lim.observe(reading(reset_tokens_s=12.0))
        return lim.stats().tpm_level

    assert run(main) == pytest.approx(1200.0)


def test_injected_clock_is_the_one_waited_on() -> None:
    class RecordingClock:
        def __init__(self) -> None:
            self.sleeps: list[float] = []

        def time(self) -> float:
            return anyio.current_time()

        async def sleep(self, seconds: float) -> None:
            self.sleeps.append(seconds)
            await anyio.sleep(seconds)

    async def main() -> list[float]:
        clock = RecordingClock()
        lim = LaneLimiter(burst_s=MINUTE, rpm=60, tpm=None, max_concurrency=10, clock=clock)
        for _ in range(62):
            (await lim.acquire(0)).release()
        return clock.sleeps

    assert run(main) == [pytest.approx(1.0), pytest.approx(1.0)]


def test_stats_is_a_frozen_snapshot() -> None:
    async def main() -> LaneStats:
        lim = LaneLimiter(rpm=10, tpm=100, max_concurrency=3, burst_s=MINUTE)
        await lim.acquire(7)
        lim.on_retry()
        return lim.stats()

    s = run(main)
    assert (s.in_flight, s.rpm_level, s.tpm_level, s.retries, s.paused_until) == (1, 1.0, 7.0, 1, None)
    assert (s.requests_last_min, s.tokens_last_min) == (1, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.in_flight = 5  # type: ignore[misc]


def test_stats_can_be_read_outside_the_event_loop() -> None:
    async def main() -> LaneLimiter:
        lim = LaneLimiter(rpm=60, tpm=None, max_concurrency=3)
        await lim.acquire(1)
        return lim

    stats = run(main).stats()  # e.g. from a display thread
    assert stats.in_flight == 1 and stats.rpm_limit == 60


def test_last_minute_counts_follow_admissions_and_settlements() -> None:
    async def main() -> list[tuple[int, int]]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=10)
        seen = []
        (await lim.acquire(500)).settle(200)
        await anyio.sleep(30.0)
        await lim.acquire(100)
        seen.append((lim.stats().requests_last_min, lim.stats().tokens_last_min))
        await anyio.sleep(40.0)
        seen.append((lim.stats().requests_last_min, lim.stats().tokens_last_min))
        return seen

    assert run(main) == [(2, 300), (1, 100)]


def test_a_lane_paces_within_the_minute_by_default() -> None:
    async def main() -> list[float]:
        lim = LaneLimiter(rpm=600, tpm=None, max_concurrency=1000)  # 10 a second
        times = []
        for _ in range(25):
            (await lim.acquire(0)).release()
            times.append(anyio.current_time())
        return times

    times = run(main)
    # half a second's share goes at once, never a minute's: then one every 0.1 s
    assert times[:5] == [0.0] * 5
    assert times[5] == pytest.approx(0.1) and times[24] == pytest.approx(2.0)


def test_tokens_pace_within_the_minute_and_large_calls_wait_for_an_empty_bucket() -> None:
    async def main() -> list[float]:
        lim = LaneLimiter(rpm=None, tpm=6000, max_concurrency=100)  # 100 tokens/s, burst 50
        times = []
        for tokens in (50, 10, 400, 400):
            (await lim.acquire(tokens)).release()
            times.append(anyio.current_time())
        return times

    # 50 fill the burst; 10 wait for 10 to drain; 400 (larger than the burst) wait for an empty
    # bucket, and the next 400 for those and the guard (2 tokens, 0.02 s) to drain
    assert run(main) == [0.0, pytest.approx(0.1), pytest.approx(0.6), pytest.approx(4.6 + GUARD_S)]


def test_a_429_narrows_the_burst_once_per_burst_of_429s_while_the_limits_are_known() -> None:
    async def main() -> list[float]:
        lim = LaneLimiter(rpm=600, tpm=None, max_concurrency=10, decrease_cooldown_s=1.0)
        seen = [lim.stats().burst_s]
        lim.on_rate_limited(0.1)
        lim.on_rate_limited(0.1)  # the same burst of 429s
        seen.append(lim.stats().burst_s)
        for _ in range(20):
            await anyio.sleep(1.0)
            lim.on_rate_limited(0.1)
        seen.append(lim.stats().burst_s)
        unknown = LaneLimiter(rpm=None, tpm=None, max_concurrency=10)
        unknown.on_rate_limited(0.1)  # no bucket to narrow: the pause and AIMD are all there is
        seen.append(unknown.stats().burst_s)
        return seen

    assert run(main) == [0.5, 0.25, MIN_BURST_S, 0.5]


def test_a_narrowed_burst_widens_back_after_a_quiet_minute() -> None:
    async def main() -> list[float]:
        lim = LaneLimiter(rpm=600, tpm=None, max_concurrency=10)
        lim.on_rate_limited(0.1)
        lim.on_rate_limited(0.1)  # one burst of 429s: 0.25
        await anyio.sleep(1.0)
        lim.on_rate_limited(0.1)  # another: 0.125
        seen = [lim.stats().burst_s]
        await anyio.sleep(WIDEN_AFTER_S - 1.0)
        lim.on_success()  # not yet a minute since the last 429
        seen.append(lim.stats().burst_s)
        await anyio.sleep(1.0)
        lim.on_success()
        lim.on_success()  # the next doubling waits another minute
        seen.append(lim.stats().burst_s)
        await anyio.sleep(WIDEN_AFTER_S)
        lim.on_success()
        await anyio.sleep(WIDEN_AFTER_S)
        lim.on_success()  # never wider than it started
        seen.append(lim.stats().burst_s)
        return seen

    assert run(main) == [0.125, 0.125, 0.25, 0.5]


def test_a_narrowed_burst_paces_what_follows() -> None:
    async def main() -> list[float]:
        lim = LaneLimiter(rpm=600, tpm=None, max_concurrency=1000)
        lim.on_rate_limited(None)  # a 429 (1 s pause): the provider's window is tighter
        times = []
        for _ in range(4):
            (await lim.acquire(0)).release()
            times.append(anyio.current_time())
        return times

    # after the pause, a quarter of a second's share (2.5 requests) at once, then one every 0.1 s
    assert run(main) == [1.0, 1.0, pytest.approx(1.05), pytest.approx(1.15)]


def test_in_flight_never_shows_more_than_allowed_when_aimd_lowers_the_cap() -> None:
    async def main() -> list[tuple[int, int, int, str | None]]:
        lim = LaneLimiter(rpm=None, tpm=None, max_concurrency=4)
        held = [await lim.acquire(0) for _ in range(4)]
        seen = []

        def look() -> None:
            s = lim.stats()
            seen.append((s.in_flight, s.concurrency_limit, s.concurrency_cap, s.waiting_for))

        async def late() -> None:
            held.append(await lim.acquire(0))

        lim.on_server_error()  # the cap halves to 2 while 4 run
        async with anyio.create_task_group() as tg:
            tg.start_soon(late)
            await anyio.sleep(0.1)
            look()
            for reservation in held[:3]:
                reservation.release()  # slots are retired as their calls end
                look()
            await anyio.sleep(0.1)
            look()
        return seen

    seen = run(main)
    assert all(in_flight <= allowed for in_flight, allowed, _, _ in seen)
    assert seen == [
        (4, 4, 2, "concurrency"),
        (3, 3, 2, "concurrency"),
        (2, 2, 2, "concurrency"),
        (1, 2, 2, None),  # the waiter may go: woken, it has not run yet
        (2, 2, 2, None),
    ]


def test_waiting_for_names_what_the_head_of_the_queue_waits_for() -> None:
    async def waits_for(lim: LaneLimiter, tokens: int) -> str | None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lim.acquire, tokens)
            await anyio.sleep(0.01)
            reason = lim.stats().waiting_for
            tg.cancel_scope.cancel()
        return reason

    async def main() -> list[str | None]:
        requests = LaneLimiter(rpm=60, tpm=6000, max_concurrency=10)
        seen = [requests.stats().waiting_for]  # nothing waits
        await requests.acquire(0)  # one request fills a burst of half a request for a second
        seen.append(await waits_for(requests, 10))
        tokens = LaneLimiter(rpm=60_000, tpm=6000, max_concurrency=10)
        await tokens.acquire(50)  # a burst of 50 tokens, full for half a second
        seen.append(await waits_for(tokens, 10))
        slots = LaneLimiter(rpm=None, tpm=None, max_concurrency=1)
        await slots.acquire(0)
        seen.append(await waits_for(slots, 0))
        paused = LaneLimiter(rpm=None, tpm=None, max_concurrency=1)
        paused.on_rate_limited(30.0)
        seen.append(await waits_for(paused, 0))
        seen.append(paused.stats().waiting_for)  # the waiter gave up: nothing waits
        return seen

    assert run(main) == [None, "requests/min", "tokens/min", "concurrency", "retry-after", None]


def test_a_cancelled_reservation_gives_everything_back() -> None:
    async def main() -> tuple[LaneStats, LaneStats]:
        lim = LaneLimiter(rpm=60, tpm=6000, max_concurrency=1, burst_s=MINUTE)
        reservation = await lim.acquire(500)
        before = lim.stats()
        reservation.cancel()
        reservation.cancel()
        return before, lim.stats()

    before, after = run(main)
    assert (before.in_flight, before.rpm_level, before.tpm_level, before.admitted) == (1, 1.0, 500.0, 1)
    assert (after.in_flight, after.rpm_level, after.tpm_level, after.admitted) == (0, 0.0, 0.0, 0)
    assert (after.requests_last_min, after.tokens_last_min) == (0, 0)


@pytest.mark.parametrize("bad", [{"rpm": 0}, {"tpm": -5}, {"max_concurrency": 0}, {"burst_s": 0.0}])
def test_bad_configuration_names_the_field(bad: dict[str, int]) -> None:
    kw: dict[str, Any] = {"rpm": None, "tpm": None, "max_concurrency": 4} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        LaneLimiter(**kw)


@pytest.mark.parametrize("seed", range(5))
def test_random_load_never_exceeds_a_provider_with_the_same_limits(seed: int) -> None:
    """A provider-side leaky bucket, charged when each call arrives, never overflows."""
    rng = random.Random(seed)
    rpm, tpm = 120, 20_000

    async def main() -> int:
        lim = LaneLimiter(rpm=rpm, tpm=tpm, max_concurrency=16)
        server = {"req": 0.0, "tok": 0.0, "t": 0.0}
        over = 0

        def arrive(tokens: int) -> None:
            nonlocal over
            now = anyio.current_time()
            dt = now - server["t"]
            server["req"] = max(0.0, server["req"] - dt * rpm / 60)
            server["tok"] = max(0.0, server["tok"] - dt * tpm / 60)
            server["t"] = now
            server["req"] += 1
            server["tok"] += tokens
            if server["req"] > rpm + 1e-6 or server["tok"] > tpm + 1e-6:
                over += 1

        async def call() -> None:
            reserve = rng.randint(100, 3000)
            r = await lim.acquire(reserve)
            arrive(reserve)
            await anyio.sleep(rng.uniform(0.01, 3.0))
            actual = rng.randint(50, reserve)
            server["tok"] = max(0.0, server["tok"] - (reserve - actual))  # provider refunds too
            r.settle(actual)

        async with anyio.create_task_group() as tg:
            for _ in range(400):
                tg.start_soon(call)
                await anyio.sleep(rng.expovariate(10))
        return over

    assert run(main) == 0, f"seed={seed}"
