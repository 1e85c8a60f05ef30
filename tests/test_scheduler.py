"""Lane-level scheduling rules: answers before new traces; the spend guard's arithmetic."""

from __future__ import annotations

import anyio
import pytest

from runner.engine.lane import AnswersFirst
from runner.engine.spend import SpendGuard, SpendNeed
from runner.errors import SpendCapReached


async def test_traces_wait_while_answers_wait() -> None:
    gate = AnswersFirst()
    order: list[str] = []
    gate.answer_waiting()
    gate.answer_waiting()

    async def trace() -> None:
        await gate.before_trace()
        order.append("trace")

    async with anyio.create_task_group() as tg:
        tg.start_soon(trace)
        await anyio.wait_all_tasks_blocked()
        assert order == []  # held back: two answers are waiting for capacity
        gate.answer_admitted()
        order.append("answer")
        await anyio.wait_all_tasks_blocked()
        assert order == ["answer"]  # one answer still waiting
        gate.answer_admitted()
        order.append("answer")
    assert order == ["answer", "answer", "trace"]


async def test_no_waiting_answers_lets_traces_through() -> None:
    gate = AnswersFirst()
    # in a scope cancelled up front, any wait inside before_trace would be cut and caught here
    with anyio.CancelScope() as scope:
        scope.cancel()
        await gate.before_trace()
    assert not scope.cancelled_caught
    gate.answer_waiting()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await gate.before_trace()
    assert scope.cancelled_caught  # with an answer waiting, the trace does wait


def test_spend_guard_counts_in_flight_worst_cases() -> None:
    guard = SpendGuard(max_usd=1.0, provider_caps={"p": 0.8, "q": None})
    a = guard.try_reserve(SpendNeed("p", 0.5))
    assert a == 0.5
    # 0.5 in flight + 0.4 > provider cap 0.8, but 0.4 alone fits: wait for the call in flight
    assert guard.try_reserve(SpendNeed("p", 0.4)) is None
    assert guard.reached is None and guard.try_reserve(SpendNeed("q", 0.01)) == 0.01  # nothing latched
    guard.settle("p", a, 0.1)
    assert guard.try_reserve(SpendNeed("p", 0.4)) == 0.4  # the refund made room
    assert guard.spent == pytest.approx(0.1)
    assert guard.in_flight == pytest.approx(0.41) and guard.calls_in_flight == 2


def test_spend_guard_run_cap() -> None:
    guard = SpendGuard(max_usd=1.0, provider_caps={}, spent=0.7)
    held = guard.try_reserve(SpendNeed("p", 0.2))
    assert held is not None and guard.try_reserve(SpendNeed("p", 0.2)) is None
    with pytest.raises(SpendCapReached, match=r"run.max_usd \$1.0000: spent \$0.7000 \+ next call up to \$0.4000"):
        guard.try_reserve(SpendNeed("p", 0.4))  # cannot fit whatever the call in flight costs
    with pytest.raises(SpendCapReached):
        guard.try_reserve(SpendNeed("p", 0.01))  # the cap is reached: no new work starts after it


def test_cap_stops_new_work_but_lets_paid_traces_be_answered() -> None:
    guard = SpendGuard(max_usd=1.0, provider_caps={})
    trace = guard.try_reserve(SpendNeed("p", 0.3, commits_usd=0.2))  # its answers must fit too
    assert trace is not None
    assert guard.try_reserve(SpendNeed("p", 0.4, commits_usd=0.4)) is None  # fits once the trace settles
    guard.settle("p", trace, 0.3)
    with pytest.raises(SpendCapReached):
        guard.try_reserve(SpendNeed("p", 0.4, commits_usd=0.4))  # 0.3 spent + 0.8 > 1.0: no new trace
    with pytest.raises(SpendCapReached):
        guard.try_reserve(SpendNeed("p", 0.01))  # new work stays stopped
    answer = guard.try_reserve(SpendNeed("p", 0.1, new_work=False))  # the streamed trace's answer fits
    assert answer is not None
    guard.settle("p", answer, 0.05)
    with pytest.raises(SpendCapReached):
        guard.try_reserve(SpendNeed("p", 0.9, new_work=False))  # but never past the cap
    assert guard.spent == pytest.approx(0.35)


async def test_waiting_for_a_settle_returns_when_a_call_in_flight_settles() -> None:
    guard = SpendGuard(max_usd=1.0, provider_caps={})
    await guard.wait_settled()  # nothing in flight: nothing to wait for
    held = guard.try_reserve(SpendNeed("p", 0.9))
    assert held is not None
    woke: list[float] = []

    async def waiter() -> None:
        await guard.wait_settled()
        woke.append(guard.spent)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        assert woke == []
        guard.settle("p", held, 0.25)
    assert woke == [0.25]
