"""The spend cap as a lane meets it, against the simulator over loopback on virtual time.

A call's worst case is reserved when the limiter admits it, not while it waits; a call that fits
only once calls in flight settle waits for them; the run stops only when the cap cannot fit the
next call whatever those calls cost.
"""

from __future__ import annotations

from test_limits_sim import Setup, run_against_sim, worst_usd

from runner.errors import SpendCapReached


def forced_answer(i: int) -> str:
    # a forced-answer prompt: the simulated model answers in a few tokens, far under the cap
    return f"<reasoning_so_far> So the current answer is {i}.</reasoning_so_far>"


def test_calls_waiting_for_the_rate_limit_hold_no_spend() -> None:
    """Failed before admission reserved the spend: 16 calls queued behind a 60 RPM limit held 16
    worst cases, the 9th did not fit an 8-call cap, and the run stopped after 8 cheap calls."""
    setup = Setup(sim_rpm=60, lane_rpm=60, calls=20, kind="trace", model="sim-cot-small", cap=1500)
    setup.text = forced_answer
    worst = worst_usd(setup)
    setup.max_usd = 8 * worst
    out = run_against_sim(setup)
    assert out.counts["done"] == 20 and out.failures == []
    assert out.sim.rate_limited == 0
    # only calls the limiter admitted held money: one or two at a time at 1 request a second
    assert out.peak_reserved_usd <= out.peak_in_flight * worst + 1e-12 and out.peak_in_flight <= 2


def test_a_run_waits_for_calls_in_flight_to_settle_instead_of_stopping() -> None:
    """Failed before: the 4th call did not fit beside 3 worst cases in flight and the guard
    latched, though each call cost a fraction of its worst case and the cap held all 20."""
    setup = Setup(sim_rpm=None, calls=20, workers=16, kind="trace", model="sim-cot-small", cap=1500)
    setup.text = forced_answer
    worst = worst_usd(setup)
    setup.max_usd = 3.5 * worst
    out = run_against_sim(setup)
    assert out.counts["done"] == 20 and out.failures == []
    spent = sum(a.usd for a in out.sink.attempts())
    assert spent < worst  # each answer is short: the worst cases were never spent
    assert "spend cap" in out.waited_for  # the lane said why it waited


def test_the_run_stops_when_the_cap_cannot_fit_the_next_call() -> None:
    # every call runs to its cap: after two, a third cannot fit whatever is in flight
    setup = Setup(sim_rpm=None, calls=10, workers=4, kind="trace")
    setup.max_usd = 2.5 * worst_usd(setup)
    out = run_against_sim(setup)
    assert out.counts["done"] == 2
    assert len(out.failures) == 8 and all(isinstance(f, SpendCapReached) for f in out.failures)
    assert "run.max_usd" in str(out.failures[-1])
    attempts = out.sink.attempts()
    assert len(attempts) == 2 and sum(a.usd for a in attempts) <= setup.max_usd
    assert out.lane.admitted == 2  # calls given back at admission count as never admitted
