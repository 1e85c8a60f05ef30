"""The ledger writer's queue stays bounded when the disk is slower than the calls.

Lanes write through a real `LedgerWriter` (from `open_ledger`) into a real file whose fsync is
made slow; every attempt's intent waits until it is on disk (`append_durable`), which is the
writer's back-pressure. However fast the simulator answers, no batch may hold more than a few
records per worker: one settled attempt, the next attempt's intent and one in-flight sample.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import aiohttp
import anyio
import pytest

from anytime_sim import SimConfig, open_simulator
from runner.engine.consumers import AnswerConsumer
from runner.engine.lane import CallSpec, Lane
from runner.engine.limits import LaneLimiter
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.ledger import writer as writer_module
from runner.ledger.prices import ModelPrice
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, InFlight
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.count import count_chat_tokens
from runner.tokens.encodings import get_encoding
from runner.types import ChatRequest, Message

WORKERS = 8
CALLS = 64


class SlowDiskWriter(writer_module.LedgerWriter):
    """The product's writer on a disk that takes 10 ms more per batch; it notes each batch's size."""

    batches: ClassVar[list[int]] = []

    def _write_sync(self, batch: bytearray, count: int) -> None:
        SlowDiskWriter.batches.append(count)
        time.sleep(0.01)  # in the writer's own thread, as a slow fsync would
        super()._write_sync(batch, count)


async def run_calls(run_dir: Path) -> None:
    encoding = get_encoding("o200k_base")
    jobs = iter(range(CALLS))
    async with (
        open_simulator(SimConfig(time_scale=0), []) as sim,
        aiohttp.ClientSession() as session,
        writer_module.open_ledger(run_dir) as ledger,
    ):
        lane = Lane(
            name="sim",
            adapter=OpenAIChatAdapter(f"{sim.base_url}/v1", "test-key", provider="sim"),
            limiter=LaneLimiter(rpm=None, tpm=None, max_concurrency=WORKERS),
            policy=RetryPolicy(max_attempts=2, seed=0),
            session=session,
            ledger=ledger,
            spend=SpendGuard(None, {}),
            first_token_timeout=30.0,
            idle_timeout=30.0,
            total_timeout=60.0,
        )

        async def worker() -> None:
            for i in jobs:
                text = f"Question {i}: add {i} and {i + 1}."
                request = ChatRequest(model="sim-gpt-4.1", messages=(Message("user", text),), max_output_tokens=16)
                prompt = count_chat_tokens(encoding, request.messages)
                spec = CallSpec(
                    job_id=f"j{i}",
                    kind="answer",
                    model="sim-gpt-4.1",
                    request=request,
                    prompt_tokens=prompt,
                    price=ModelPrice(input=1.0, output=2.0),
                )
                await lane.call(spec, lambda: AnswerConsumer(encoding))

        async with anyio.create_task_group() as tg:
            for _ in range(WORKERS):
                tg.start_soon(worker)


def test_a_slow_disk_holds_the_calls_back_and_the_queue_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "LedgerWriter", SlowDiskWriter)
    SlowDiskWriter.batches = []
    anyio.run(run_calls, tmp_path)
    records = list(iter_records(tmp_path))
    attempts = [r for r in records if isinstance(r, Attempt)]
    intents = [r for r in records if isinstance(r, InFlight)]
    assert len(attempts) == CALLS and len(intents) >= CALLS  # nothing lost on the way
    # without back-pressure the calls (which take no time here) would outrun the disk and one
    # batch would hold most of the run's records
    assert max(SlowDiskWriter.batches) <= 3 * WORKERS
    assert len(SlowDiskWriter.batches) >= CALLS // WORKERS
