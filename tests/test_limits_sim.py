"""A lane against the real simulator over loopback, on virtual time: at the limit, never over.

The simulator's buckets and the lane's limiter both read the event loop's clock, and the loop
autojumps to its next timer whenever every task waits (see `VirtualTimeLoop`), so minutes of
rate-limited traffic take well under a second and the times asserted are virtual.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import anyio
import pytest
from test_limits import VirtualTimeLoop

from anytime_sim import SimConfig, open_simulator
from runner.engine.limits import LaneLimiter, LaneStats
from runner.engine.retry import RetryPolicy
from runner.errors import ProviderError
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.types import ChatRequest, Message, Usage

MODEL = "sim-gpt-4.1"
CAP = 16


def prompt_tokens(text: str) -> int:
    from runner.tokens.encodings import get_encoding

    enc = get_encoding("o200k_base")
    return 3 + len(enc.encode_ordinary("user")) + len(enc.encode_ordinary(text)) + 3  # as OpenAI counts


async def drive(base_url: str, calls: int, limiter: LaneLimiter, workers: int, model: str = MODEL) -> dict[str, int]:
    adapter = OpenAIChatAdapter(f"{base_url}/v1", "test-key", provider="sim")
    policy = RetryPolicy(max_attempts=20, seed=0)
    counts = {"done": 0, "errors": 0, "retries": 0}
    jobs = iter(range(calls))

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        text = f"Question {i}: add {i} and {i + 1}."
        request = ChatRequest(model=model, messages=(Message("user", text),), max_output_tokens=CAP)
        for attempt in itertools.count(1):
            reservation = await limiter.acquire(prompt_tokens(text) + CAP)
            usage: Usage | None = None
            try:
                async with adapter.stream(session, request) as resp:
                    reservation.observe(resp.limits)
                    async for event in resp.events:
                        if isinstance(event, Usage):
                            usage = event
            except ProviderError as exc:
                reservation.settle(0)
                limits = getattr(exc, "limits", None)
                if limits is not None:
                    limiter.observe(limits)
                if exc.error_class == "rate_limit":
                    limiter.on_rate_limited(exc.retry_after_s)
                delay = policy.delay(attempt, exc)
                if delay is None:
                    counts["errors"] += 1
                    return
                counts["retries"] += 1
                await anyio.sleep(delay)
                continue
            assert usage is not None
            reservation.settle(usage.input_tokens + usage.output_tokens)
            limiter.on_success()
            counts["done"] += 1
            return

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in jobs:
            await one(session, i)

    async with aiohttp.ClientSession() as session, anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker, session)
    return counts


def run_against_sim(
    *,
    sim_rpm: int,
    sim_tpm: int | None,
    lane_rpm: int | None,
    lane_tpm: int | None,
    calls: int,
    model: str = MODEL,
) -> tuple[dict[str, int], Any, float, LaneStats]:
    async def main() -> tuple[dict[str, int], Any, float, LaneStats]:
        loop = asyncio.get_running_loop()
        config = SimConfig(rpm=sim_rpm, tpm=sim_tpm, time_scale=1.0)
        async with open_simulator(config, [], clock=loop.time) as sim:
            limiter = LaneLimiter(rpm=lane_rpm, tpm=lane_tpm, max_concurrency=16)
            t0 = loop.time()
            counts = await drive(sim.base_url, calls, limiter, workers=16, model=model)
            elapsed = loop.time() - t0
            await sim.wait_idle()
            return counts, sim.stats().models[model], elapsed, limiter.stats()

    return anyio.run(main, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})


@pytest.mark.parametrize("given", [True, False], ids=["limits-given", "limits-learned"])
def test_lane_paces_at_the_simulators_limit_without_a_429(given: bool) -> None:
    rpm = 60
    counts, stats, elapsed, lane = run_against_sim(
        sim_rpm=rpm, sim_tpm=None, lane_rpm=rpm if given else None, lane_tpm=None, calls=90
    )
    assert counts == {"done": 90, "errors": 0, "retries": 0}
    assert stats.rate_limited == 0 and lane.rpm_limit == rpm
    # 60 go at once from the full bucket, the other 30 at one per second
    assert 30.0 <= elapsed <= 30.0 * 1.05 + 1.0


def test_lane_paces_tokens_with_refunds_without_a_429() -> None:
    tpm = 40 * (prompt_tokens("Question 10: add 10 and 11.") + CAP)
    counts, stats, elapsed, lane = run_against_sim(sim_rpm=10_000, sim_tpm=tpm, lane_rpm=None, lane_tpm=tpm, calls=80)
    assert counts["done"] == 80 and counts["errors"] == 0
    assert stats.rate_limited == 0 and lane.rpm_limit == 10_000
    bound = (stats.input_tokens + stats.output_tokens - tpm) / tpm * 60.0
    assert bound <= elapsed <= bound * 1.05 + 1.0


def test_a_lane_told_too_high_a_limit_learns_the_real_one_before_a_429() -> None:
    counts, stats, _, lane = run_against_sim(sim_rpm=30, sim_tpm=None, lane_rpm=600, lane_tpm=None, calls=60)
    assert counts == {"done": 60, "errors": 0, "retries": 0}
    assert stats.rate_limited == 0 and lane.rpm_limit == 30


def test_without_limit_headers_the_lane_backs_off_on_429s_and_finishes() -> None:
    # the vllm profile sends no x-ratelimit-* headers: 429s and Retry-After are all there is
    counts, stats, elapsed, lane = run_against_sim(
        sim_rpm=30, sim_tpm=None, lane_rpm=None, lane_tpm=None, calls=60, model="sim-gpt-oss-20b"
    )
    assert counts["done"] == 60 and counts["errors"] == 0
    assert stats.rate_limited > 0 and counts["retries"] == stats.rate_limited
    assert lane.rpm_limit is None and lane.n429 == stats.rate_limited
    assert lane.concurrency_limit < 16  # multiplicative decrease took hold
    assert elapsed >= 60.0  # nothing beats the simulator's bucket
