"""A trace's forced answers are paid for out of the commitment reserved with the trace.

With answers sent at cut time, a trace's answers start while it still streams and while other
traces are being admitted: without the commitment, traces admitted later took the money the first
trace's answers were admitted with, and a run under its cap finished no job at all
(`tests/test_sweep.py::test_spend_cap_at_half_the_estimate_is_never_exceeded` failed that way).
"""

from __future__ import annotations

import pytest

from runner.engine.spend import SpendGuard, SpendNeed
from runner.errors import SpendCapReached

A = ("job-a", "run-1")
B = ("job-b", "run-1")


def trace(owner: tuple[str, str], worst: float = 1.0, commits: float = 3.0) -> SpendNeed:
    return SpendNeed("p", worst, commits, new_work=True, owner=owner)


def answer(owner: tuple[str, str], worst: float = 1.0) -> SpendNeed:
    return SpendNeed("p", worst, new_work=False, owner=owner, draws=True)


def test_a_later_trace_cannot_take_what_an_earlier_traces_answers_need() -> None:
    guard = SpendGuard(max_usd=6.0, provider_caps={})
    assert guard.try_reserve(trace(A)) == 1.0  # 1 + 3 committed: 4 of 6 held
    assert guard.in_flight == pytest.approx(4.0)
    assert guard.try_reserve(trace(B)) is None  # it would fit only once A's calls settle: it waits
    for _ in range(3):  # A's three answers come out of its commitment, with no new check
        assert guard.try_reserve(answer(A)) == 1.0
    assert guard.in_flight == pytest.approx(4.0)
    assert guard.committed[A] == ("p", pytest.approx(0.0))


def test_what_the_answers_did_not_draw_goes_back_when_the_job_ends() -> None:
    guard = SpendGuard(max_usd=10.0, provider_caps={})
    reserved = guard.try_reserve(trace(A))
    assert reserved is not None
    guard.settle("p", reserved, 0.5)  # the trace ended; its commitment stays for its answers
    assert guard.in_flight == pytest.approx(3.0)
    one = guard.try_reserve(answer(A))
    assert one is not None
    guard.settle("p", one, 0.2)
    guard.release(A)  # two cuts shared a text: one answer fewer than committed
    assert guard.in_flight == pytest.approx(0.0)
    assert guard.spent == pytest.approx(0.7)
    assert A not in guard.committed


def test_an_answer_larger_than_what_is_left_asks_the_cap_for_the_rest() -> None:
    guard = SpendGuard(max_usd=4.5, provider_caps={})
    assert guard.try_reserve(trace(A, worst=1.0, commits=1.0)) == 1.0  # 2 held
    assert guard.try_reserve(answer(A, worst=3.0)) == 3.0  # 1 drawn, 2 more fit the cap (4 held)
    assert guard.try_reserve(answer(A, worst=1.0)) is None  # nothing left to draw, no room until settled
    with pytest.raises(SpendCapReached):
        guard.raise_if_never_fits(answer(A, worst=5.0))


def test_a_retried_trace_keeps_its_first_commitment() -> None:
    guard = SpendGuard(max_usd=100.0, provider_caps={})
    first = guard.try_reserve(trace(A))
    assert first is not None
    guard.settle("p", first, 0.1)  # the stream broke
    assert guard.try_reserve(trace(A)) == 1.0  # the retry holds its own worst case, not a second commitment
    assert guard.in_flight == pytest.approx(4.0)


def test_a_commitment_holds_when_no_call_is_in_flight() -> None:
    """Between a trace's end and its first answer's start nothing may be in flight: the money for
    those answers is still held (a run capped at half its estimate overspent by 1.4% that way)."""
    guard = SpendGuard(max_usd=5.0, provider_caps={})
    first = guard.try_reserve(trace(A))
    assert first is not None
    guard.settle("p", first, 1.0)  # the trace ended: spent 1, its 3 for answers still committed
    assert guard.calls_in_flight == 0
    assert guard.try_reserve(trace(B)) is None  # 1 + 3 + (1 + 3) > 5: it waits for A's answers
    guard.release(A)
    assert guard.try_reserve(trace(B)) == 1.0


async def test_waiting_for_a_commitment_ends_when_it_is_released() -> None:
    import anyio.lowlevel

    guard = SpendGuard(max_usd=5.0, provider_caps={})
    first = guard.try_reserve(trace(A))
    assert first is not None
    guard.settle("p", first, 1.0)
    order: list[str] = []

    async def wait() -> None:
        await guard.wait_settled()  # nothing in flight, but a commitment: it waits, it does not spin
        order.append("woken")

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        order.append("released")
        guard.release(A)
    assert order == ["released", "woken"]
