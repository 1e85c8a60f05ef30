"""A lane against the real simulator over loopback, on virtual time: at the limit, never over.

The simulator's buckets and the lane's limiter both read the event loop's clock, and the loop
autojumps to its next timer whenever every task waits (see `VirtualTimeLoop`), so minutes of
rate-limited traffic take well under a second and the times asserted are virtual.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anyio
import pytest
from test_limits import VirtualTimeLoop

from anytime_sim import SimConfig, open_simulator
from runner.engine.consumers import AnswerConsumer
from runner.engine.lane import CallSpec, Lane
from runner.engine.limits import LaneLimiter, LaneStats
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.errors import ProviderError
from runner.ledger.memory import MemorySink
from runner.ledger.prices import ModelPrice
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.count import count_chat_tokens
from runner.tokens.encodings import get_encoding
from runner.types import ChatRequest, Message

MODEL = "sim-gpt-4.1"
CAP = 16


def prompt_tokens(text: str) -> int:
    return count_chat_tokens(get_encoding("o200k_base"), (Message("user", text),))


async def drive(
    base_url: str, calls: int, limiter: LaneLimiter, workers: int, model: str = MODEL
) -> tuple[dict[str, int], MemorySink]:
    """``calls`` calls through a real `Lane` (spend guard, limiter, retries, adapter, settlement)."""
    sink = MemorySink()
    encoding = get_encoding("o200k_base")
    price = ModelPrice(input=1.0, output=2.0)
    counts = {"done": 0, "errors": 0, "retries": 0}
    jobs = iter(range(calls))
    async with aiohttp.ClientSession() as session:
        lane = Lane(
            name="sim",
            adapter=OpenAIChatAdapter(f"{base_url}/v1", "test-key", provider="sim"),
            limiter=limiter,
            policy=RetryPolicy(max_attempts=20, seed=0),
            session=session,
            ledger=sink,
            spend=SpendGuard(None, {}),
            first_token_timeout=120.0,
            idle_timeout=60.0,
            total_timeout=1800.0,
        )

        async def worker() -> None:
            for i in jobs:
                text = f"Question {i}: add {i} and {i + 1}."
                request = ChatRequest(model=model, messages=(Message("user", text),), max_output_tokens=CAP)
                spec = CallSpec(
                    job_id=f"j{i}",
                    kind="answer",
                    model=model,
                    request=request,
                    prompt_tokens=prompt_tokens(text),
                    price=price,
                )
                try:
                    await lane.call(spec, lambda: AnswerConsumer(encoding))
                    counts["done"] += 1
                except ProviderError:
                    counts["errors"] += 1

        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
    counts["retries"] = lane.counters.retries
    return counts, sink


def run_against_sim(
    *,
    sim_rpm: int,
    sim_tpm: int | None,
    lane_rpm: int | None,
    lane_tpm: int | None,
    calls: int,
    model: str = MODEL,
) -> tuple[dict[str, int], Any, float, LaneStats, MemorySink]:
    async def main() -> tuple[dict[str, int], Any, float, LaneStats, MemorySink]:
        loop = asyncio.get_running_loop()
        config = SimConfig(rpm=sim_rpm, tpm=sim_tpm, time_scale=1.0)
        async with open_simulator(config, [], clock=loop.time) as sim:
            limiter = LaneLimiter(rpm=lane_rpm, tpm=lane_tpm, max_concurrency=16)
            t0 = loop.time()
            counts, sink = await drive(sim.base_url, calls, limiter, workers=16, model=model)
            elapsed = loop.time() - t0
            await sim.wait_idle()
            return counts, sim.stats().models[model], elapsed, limiter.stats(), sink

    return anyio.run(main, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})


@pytest.mark.parametrize("given", [True, False], ids=["limits-given", "limits-learned"])
def test_lane_paces_at_the_simulators_limit_without_a_429(given: bool) -> None:
    rpm = 60
    counts, stats, elapsed, lane, _ = run_against_sim(
        sim_rpm=rpm, sim_tpm=None, lane_rpm=rpm if given else None, lane_tpm=None, calls=90
    )
    assert counts == {"done": 90, "errors": 0, "retries": 0}
    assert stats.rate_limited == 0 and lane.rpm_limit == rpm
    # 60 go at once from the full bucket, the other 30 at one per second
    assert 30.0 <= elapsed <= 30.0 * 1.05 + 1.0


def test_lane_paces_tokens_with_refunds_without_a_429() -> None:
    tpm = 40 * (prompt_tokens("Question 10: add 10 and 11.") + CAP)
    counts, stats, elapsed, lane, _ = run_against_sim(
        sim_rpm=10_000, sim_tpm=tpm, lane_rpm=None, lane_tpm=tpm, calls=80
    )
    assert counts["done"] == 80 and counts["errors"] == 0
    assert stats.rate_limited == 0 and lane.rpm_limit == 10_000
    bound = (stats.input_tokens + stats.output_tokens - tpm) / tpm * 60.0
    assert bound <= elapsed <= bound * 1.05 + 1.0


def test_a_lane_told_too_high_a_limit_learns_the_real_one_before_a_429() -> None:
    counts, stats, _, lane, _ = run_against_sim(sim_rpm=30, sim_tpm=None, lane_rpm=600, lane_tpm=None, calls=60)
    assert counts == {"done": 60, "errors": 0, "retries": 0}
    assert stats.rate_limited == 0 and lane.rpm_limit == 30


def test_without_limit_headers_the_lane_backs_off_on_429s_and_finishes() -> None:
    # the vllm profile sends no x-ratelimit-* headers: 429s and Retry-After are all there is
    counts, stats, elapsed, lane, sink = run_against_sim(
        sim_rpm=30, sim_tpm=None, lane_rpm=None, lane_tpm=None, calls=60, model="sim-gpt-oss-20b"
    )
    assert counts["done"] == 60 and counts["errors"] == 0
    assert stats.rate_limited > 0 and counts["retries"] == stats.rate_limited
    assert lane.rpm_limit is None and lane.n429 == stats.rate_limited
    assert lane.concurrency_limit < 16  # multiplicative decrease took hold
    assert elapsed >= 60.0  # nothing beats the simulator's bucket
    # every attempt is on record, each refused one as a 429 error, each served one priced
    attempts = sink.attempts()
    refused = [a for a in attempts if a.http_status == 429]
    assert len(attempts) == 60 + stats.rate_limited and len(refused) == stats.rate_limited
    assert all(a.status == "error" and a.error_class == "rate_limit" for a in refused)
    # no provider bills a request it refused: nothing is charged, no tokens are counted as billed
    assert all(a.usd == 0.0 and a.priced_from == "unbilled" and a.billed_input == 0 for a in refused)
    served_input = sum(a.billed_input for a in attempts)
    assert served_input == stats.input_tokens  # the simulator's own count of prompts it served
    assert all(a.status in ("ok", "length") and a.usd > 0 for a in attempts if a.http_status == 200)
