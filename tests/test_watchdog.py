"""The watchdog counts bytes, not parsed events: a model that thinks silently behind keep-alive
comments or pings is alive; a body that sends nothing at all is still cut. Defaults follow the
model's trace fidelity (hidden reasoning may be silent for minutes)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from anytime_sim import SimConfig, open_simulator
from runner.config.calls import FIRST_TOKEN_S, IDLE_S, plan_model
from runner.config.manifest import load_manifest
from runner.engine.consumers import AnswerConsumer
from runner.engine.lane import CallSpec, Lane
from runner.engine.limits import LaneLimiter
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.errors import CallTimeout
from runner.ledger.memory import MemorySink
from runner.ledger.prices import ModelPrice
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.encodings import get_encoding
from runner.types import ChatRequest, Message
from tests.conftest import write_manifest


async def silent_call(modes: str) -> MemorySink:
    """One call to a hidden-reasoning model that thinks ~1.2 s without a token, through a lane
    whose first-token and idle timeouts are 0.4 s."""
    sink = MemorySink()
    config = SimConfig(time_scale=1.0, keepalive_s=0.1)
    async with open_simulator(config, []) as sim, aiohttp.ClientSession() as session:
        adapter = OpenAIChatAdapter(
            f"{sim.base_url}/v1", "k", provider="p", options={"extra_headers": {"x-sim-mode": modes}} if modes else None
        )
        lane = Lane(
            name="p",
            adapter=adapter,
            limiter=LaneLimiter(rpm=None, tpm=None, max_concurrency=1),
            policy=RetryPolicy(max_attempts=1),
            session=session,
            ledger=sink,
            spend=SpendGuard(None, {}),
            first_token_timeout=0.4,
            idle_timeout=0.4,
            total_timeout=30.0,
        )
        request = ChatRequest(model="sim-o4-mini", messages=(Message("user", "Think."),), max_output_tokens=600)
        spec = CallSpec(
            job_id="j", kind="answer", model="m", request=request, prompt_tokens=10, price=ModelPrice(input=1, output=1)
        )
        try:
            await lane.call(spec, lambda: AnswerConsumer(get_encoding("o200k_base")))
        except CallTimeout:
            pass
    return sink


async def test_keep_alives_keep_a_silently_thinking_stream_alive() -> None:
    (attempt,) = (await silent_call("comments")).attempts()
    assert attempt.status in ("ok", "length") and attempt.error is None
    assert attempt.reasoning_tokens and attempt.reasoning_tokens > 0  # it thought silently, and was billed for it


async def test_a_body_that_sends_nothing_is_still_cut_at_the_idle_timeout() -> None:
    (attempt,) = (await silent_call("")).attempts()
    assert attempt.status == "error" and attempt.error_class == "timeout"


@pytest.mark.parametrize(
    ("model", "fidelity"),
    [("sim-o4-mini", "hidden"), ("sim-reasoner-large", "raw"), ("sim-claude-sonnet-4", "summarised")],
)
def test_timeouts_default_by_fidelity_and_the_manifest_wins(tmp_path: Path, model: str, fidelity: str) -> None:
    body = f"""
[run]
name = "t"
[providers.p]
kind = "sim"
[providers.q]
kind = "sim"
timeouts = {{ first_token = 7, idle = 3 }}
[models.a]
provider = "p"
model = "{model}"
[models.b]
provider = "q"
model = "{model}"
[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
"""
    loaded = load_manifest(write_manifest(tmp_path, body))
    a, b = plan_model(loaded, "a"), plan_model(loaded, "b")
    assert (a.fidelity, a.first_token_s, a.idle_s) == (fidelity, FIRST_TOKEN_S[fidelity], IDLE_S[fidelity])
    assert (b.first_token_s, b.idle_s) == (7, 3)
    assert FIRST_TOKEN_S["hidden"] >= 600  # hidden reasoning may think for minutes before a byte
