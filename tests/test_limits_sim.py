"""A lane against the real simulator over loopback, on virtual time: at the limit, never over.

The simulator's buckets and the lane's limiter both read the event loop's clock, and the loop
autojumps to its next timer whenever every task waits (see `VirtualTimeLoop`), so minutes of
rate-limited traffic take well under a second and the times asserted are virtual. The simulator
enforces its per-minute limits over 1-second windows unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from test_limits import VirtualTimeLoop

from anytime_sim import SimConfig, open_simulator
from anytime_sim.faults import FaultRates
from runner.config.manifest import LoadedManifest, parse_manifest
from runner.engine.consumers import AnswerConsumer
from runner.engine.lane import CallSpec, Lane
from runner.engine.lanes import open_lanes
from runner.engine.limits import DEFAULT_BURST_S, LaneLimiter, LaneStats
from runner.engine.progress import lane_snapshot
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.errors import ProviderError, RateLimited, SpendCapReached
from runner.ledger.memory import MemorySink
from runner.ledger.prices import ModelPrice, worst_case_cost
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.count import count_chat_tokens
from runner.tokens.encodings import get_encoding
from runner.types import CallKind, ChatRequest, Message

MODEL = "sim-gpt-4.1"
CAP = 16
PRICE = ModelPrice(input=1.0, output=2.0)


def prompt_tokens(text: str) -> int:
    return count_chat_tokens(get_encoding("o200k_base"), (Message("user", text),))


def question(i: int) -> str:
    return f"Question {i}: add {i} and {i + 1}."


@dataclass
class Setup:
    """One lane against one simulator: the simulator's limits and window, the lane's knobs."""

    sim_rpm: int | None
    sim_tpm: int | None = None
    lane_rpm: int | None = None
    lane_tpm: int | None = None
    window_s: float = 1.0  # the simulator enforces its per-minute limits over this window
    burst_s: float = DEFAULT_BURST_S
    calls: int = 60
    workers: int = 16
    model: str = MODEL
    cap: int = CAP
    kind: CallKind = "answer"
    text: Callable[[int], str] = question
    max_attempts: int = 20
    patience_s: float = 1800.0
    max_usd: float | None = None
    modes: tuple[str, ...] = ()
    error_5xx: float = 0.0


@dataclass
class Outcome:
    counts: dict[str, int]
    sim: Any  # the simulator's ModelStats for the model
    elapsed: float  # virtual seconds
    lane: LaneStats
    sink: MemorySink
    failures: list[BaseException] = field(default_factory=list)
    waited_for: set[str | None] = field(default_factory=set)  # every `waiting_for` the lane showed
    peak_reserved_usd: float = 0.0  # the most the spend guard held for calls at once
    peak_in_flight: int = 0  # the most calls the limiter had admitted at once
    shown_over_allowed: int = 0  # dashboard snapshots that showed more calls in flight than allowed
    most_over_cap: int = 0  # the most calls in flight above the AIMD cap (started before it fell)


def spec_for(setup: Setup, i: int) -> CallSpec:
    text = setup.text(i)
    request = ChatRequest(model=setup.model, messages=(Message("user", text),), max_output_tokens=setup.cap)
    return CallSpec(
        job_id=f"j{i}",
        kind=setup.kind,
        model=setup.model,
        request=request,
        prompt_tokens=prompt_tokens(text),
        price=PRICE,
    )


def worst_usd(setup: Setup) -> float:
    return worst_case_cost(PRICE, prompt_tokens(setup.text(10)), setup.cap)


async def drive(base_url: str, setup: Setup, out: Outcome) -> Lane:
    """``setup.calls`` calls through a real `Lane` (spend guard, limiter, retries, adapter, settlement)."""
    encoding = get_encoding("o200k_base")
    jobs = iter(range(setup.calls))
    async with aiohttp.ClientSession() as session:
        lane = Lane(
            name="sim",
            adapter=OpenAIChatAdapter(f"{base_url}/v1", "test-key", provider="sim"),
            limiter=LaneLimiter(rpm=setup.lane_rpm, tpm=setup.lane_tpm, max_concurrency=16, burst_s=setup.burst_s),
            policy=RetryPolicy(max_attempts=setup.max_attempts, seed=0, rate_limit_patience_s=setup.patience_s),
            session=session,
            ledger=out.sink,
            spend=SpendGuard(setup.max_usd, {}),
            first_token_timeout=120.0,
            idle_timeout=60.0,
            total_timeout=1800.0,
        )

        async def worker() -> None:
            for i in jobs:
                try:
                    await lane.call(spec_for(setup, i), lambda: AnswerConsumer(encoding))
                    out.counts["done"] += 1
                except (ProviderError, SpendCapReached) as exc:
                    out.counts["errors"] += 1
                    out.failures.append(exc)

        async def watch() -> None:
            while True:
                shown = lane_snapshot("sim", lane)  # what the dashboard is given
                out.waited_for.add(shown.waiting_for)
                out.shown_over_allowed += shown.in_flight > (shown.concurrency_limit or 0)
                out.peak_reserved_usd = max(out.peak_reserved_usd, lane.spend.in_flight)
                out.peak_in_flight = max(out.peak_in_flight, shown.in_flight)
                out.most_over_cap = max(out.most_over_cap, shown.in_flight - (shown.concurrency_cap or 0))
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            async with anyio.create_task_group() as workers:
                for _ in range(setup.workers):
                    workers.start_soon(worker)
                tg.start_soon(watch)
            tg.cancel_scope.cancel()
    out.counts["retries"] = lane.counters.retries
    return lane


def run_against_sim(setup: Setup) -> Outcome:
    async def main() -> Outcome:
        loop = asyncio.get_running_loop()
        config = SimConfig(
            rpm=setup.sim_rpm,
            tpm=setup.sim_tpm,
            limit_window_s=setup.window_s,
            time_scale=1.0,
            modes=setup.modes,
            faults=FaultRates(error_5xx=setup.error_5xx),
        )
        async with open_simulator(config, [], clock=loop.time) as sim:
            out = Outcome(
                {"done": 0, "errors": 0, "retries": 0},
                None,
                0.0,
                LaneLimiter(rpm=1, tpm=1, max_concurrency=1).stats(),
                MemorySink(),
            )
            t0 = loop.time()
            lane = await drive(sim.base_url, setup, out)
            out.elapsed = loop.time() - t0
            await sim.wait_idle()
            out.sim, out.lane = sim.stats().models[setup.model], lane.limiter.stats()
            return out

    return anyio.run(main, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})


@pytest.mark.parametrize("given", [True, False], ids=["limits-given", "limits-learned"])
@pytest.mark.parametrize("window_s", [60.0, 1.0], ids=["minute-window", "second-window"])
def test_lane_paces_at_the_simulators_limit_without_a_429(given: bool, window_s: float) -> None:
    """Failed before the lane paced within the minute: against 1-second windows, a lane given the
    limits drew 59 429s of 90 calls (it let a whole minute's requests go at once)."""
    rpm = 60
    # against a simulator that lets a minute go at once, the lane may be told so (burst_s=60)
    burst = 60.0 if window_s == 60.0 else DEFAULT_BURST_S
    setup = Setup(sim_rpm=rpm, lane_rpm=rpm if given else None, window_s=window_s, burst_s=burst, calls=90)
    out = run_against_sim(setup)
    assert out.counts == {"done": 90, "errors": 0, "retries": 0}
    assert out.sim.rate_limited == 0 and out.lane.rpm_limit == rpm
    # the simulator holds a window's share (60 or 1 requests) and refills one a second
    bound = 90 - rpm * window_s / 60
    assert bound <= out.elapsed <= bound * 1.05 + 1.0


def test_lane_paces_tokens_with_refunds_without_a_429() -> None:
    setup = Setup(sim_rpm=10_000, calls=80)
    cost = prompt_tokens(setup.text(10)) + CAP
    setup.sim_tpm = setup.lane_tpm = tpm = 40 * cost
    out = run_against_sim(setup)
    assert out.counts["done"] == 80 and out.counts["errors"] == 0
    assert out.sim.rate_limited == 0 and out.lane.rpm_limit == 10_000
    held = max(tpm / 60, cost)  # a second's share, or one call when that is more
    bound = (out.sim.input_tokens + out.sim.output_tokens - held) / tpm * 60.0
    assert bound <= out.elapsed <= bound * 1.05 + 1.0


def test_a_window_tighter_than_the_lane_assumed_is_learned_from_429s() -> None:
    # a quarter-second window holds 2.5 requests; the lane's burst starts at 5
    setup = Setup(sim_rpm=600, lane_rpm=600, window_s=0.25, calls=200, max_attempts=2)
    out = run_against_sim(setup)
    assert out.counts["done"] == 200 and out.counts["errors"] == 0
    assert out.lane.burst_s <= 0.25  # narrowed to at most the window
    assert 0 < out.sim.rate_limited <= 10  # a few 429s teach it; they stop once it has learned


def test_a_429_storm_fails_no_job_and_uses_up_no_attempt() -> None:
    """Failed before 429s stopped using up attempts: with 2 attempts a call, jobs failed."""
    # the vllm profile sends no x-ratelimit-* headers: 429s and Retry-After are all there is
    setup = Setup(sim_rpm=30, calls=60, model="sim-gpt-oss-20b", max_attempts=2)
    out = run_against_sim(setup)
    assert out.counts["done"] == 60 and out.counts["errors"] == 0
    assert out.sim.rate_limited > 60  # more 429s than calls: many a call met several
    assert out.counts["retries"] == out.sim.rate_limited and out.lane.n429 == out.sim.rate_limited
    assert out.elapsed >= 59.0  # nothing beats the simulator's bucket
    # the dashboard was told why calls waited
    assert "retry-after" in out.waited_for and out.shown_over_allowed == 0
    # every attempt is on record, each refused one as an unbilled 429
    attempts = out.sink.attempts()
    assert len(attempts) == 60 + out.sim.rate_limited
    assert max(a.attempt for a in attempts) > setup.max_attempts
    refused = [a for a in attempts if a.http_status == 429]
    assert all(a.status == "error" and a.error_class == "rate_limit" and a.usd == 0.0 for a in refused)


def test_the_dashboard_never_shows_more_calls_in_flight_than_allowed() -> None:
    """Failed before: when AIMD halved the cap under 16 long calls, the lane's row read 16/8."""
    setup = Setup(sim_rpm=None, calls=48, workers=16, cap=200, error_5xx=0.2)
    out = run_against_sim(setup)
    assert out.counts["done"] == 48 and out.lane.n_server_errors > 0
    assert out.most_over_cap > 0 and "concurrency" in out.waited_for  # the cap fell under running calls
    assert out.shown_over_allowed == 0


def test_429s_are_waited_out_only_for_as_long_as_the_patience() -> None:
    # every request is refused: the call keeps re-entering the limiter, backing off, until the
    # patience (the lane's total timeout in a run) is used up; then its attempts count again
    setup = Setup(sim_rpm=None, calls=1, workers=1, max_attempts=2, patience_s=30.0, modes=("rate_limit",))
    out = run_against_sim(setup)
    assert out.counts["done"] == 0 and out.counts["errors"] == 1
    assert isinstance(out.failures[0], RateLimited)
    assert 30.0 <= out.elapsed <= 60.0
    attempts = out.sink.attempts()
    assert setup.max_attempts < len(attempts) <= 15  # backed off, not hammered
    assert len(attempts) == out.sim.rate_limited


def test_a_lane_told_too_high_a_limit_learns_the_real_one_before_a_429() -> None:
    out = run_against_sim(Setup(sim_rpm=30, lane_rpm=600, window_s=60.0, calls=60))
    assert out.counts == {"done": 60, "errors": 0, "retries": 0}
    assert out.sim.rate_limited == 0 and out.lane.rpm_limit == 30


def test_without_limit_headers_the_lane_backs_off_on_429s_and_finishes() -> None:
    # the vllm profile sends no x-ratelimit-* headers: 429s and Retry-After are all there is
    out = run_against_sim(Setup(sim_rpm=30, window_s=60.0, calls=60, model="sim-gpt-oss-20b"))
    stats, lane = out.sim, out.lane
    assert out.counts["done"] == 60 and out.counts["errors"] == 0
    assert stats.rate_limited > 0 and out.counts["retries"] == stats.rate_limited
    assert lane.rpm_limit is None and lane.n429 == stats.rate_limited
    assert lane.concurrency_cap < 16  # multiplicative decrease took hold
    assert out.elapsed >= 60.0  # nothing beats the simulator's bucket
    # every attempt is on record, each refused one as a 429 error, each served one priced
    attempts = out.sink.attempts()
    refused = [a for a in attempts if a.http_status == 429]
    assert len(attempts) == 60 + stats.rate_limited and len(refused) == stats.rate_limited
    assert all(a.status == "error" and a.error_class == "rate_limit" for a in refused)
    # no provider bills a request it refused: nothing is charged, no tokens are counted as billed
    assert all(a.usd == 0.0 and a.priced_from == "unbilled" and a.billed_input == 0 for a in refused)
    served_input = sum(a.billed_input for a in attempts)
    assert served_input == stats.input_tokens  # the simulator's own count of prompts it served
    assert all(a.status in ("ok", "length") and a.usd > 0 for a in attempts if a.http_status == 200)


@pytest.mark.parametrize(("line", "burst"), [("", DEFAULT_BURST_S), ("burst_s = 60", 60.0)])
async def test_a_providers_burst_comes_from_its_manifest(tmp_path: Path, line: str, burst: float) -> None:
    text = f"""
[run]
name = "t"
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "P_KEY"
{line}
[models.a]
provider = "p"
model = "gpt-4.1"
[datasets.d]
kind = "aime"
path = "aime.jsonl"
"""
    loaded = LoadedManifest(parse_manifest(text, "m.toml"), tmp_path / "m.toml", "0")
    async with contextlib.AsyncExitStack() as stack:
        lanes = await open_lanes(
            loaded,
            stack,
            sim_url=None,
            keys={"p": "k"},
            ledger=MemorySink(),
            spend=SpendGuard(None, {}),
            on_tokens=lambda _i, _o: None,
        )
    assert lanes["p"].limiter.stats().burst_s == burst
