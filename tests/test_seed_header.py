"""Protocols without a seed field (Anthropic, Responses, Gemini) still give each sample its own
trace on the simulator: the sweep passes the seed in a header the simulator reads."""

from __future__ import annotations

import json

import aiohttp
import pytest

from anytime_sim import SimConfig, open_simulator
from runner.config.manifest import Provider
from runner.engine.simulator import sim_options
from runner.providers.base import Adapter
from runner.providers.registry import make_adapter
from runner.types import ChatRequest, Message, Reasoning
from tests.conftest import DATA

CASES = [
    ("anthropic", "sim-claude-sonnet-4", "/v1"),
    ("gemini", "sim-gemini-2.5-flash", "/v1beta"),
    ("openai_responses", "sim-o4-mini", "/v1"),
]


PROBLEM = json.loads((DATA / "aime_2024.jsonl").read_text().splitlines()[0])["problem"]


async def reasoning_of(session: aiohttp.ClientSession, adapter: Adapter, model: str, seed: int) -> str:
    request = ChatRequest(
        model=model, max_output_tokens=1500, seed=seed, reasoning_budget=1024, messages=(Message("user", PROBLEM),)
    )
    text = []
    async with adapter.stream(session, request) as response:
        async for event in response.events:
            if isinstance(event, Reasoning):
                text.append(event.text)
    return "".join(text)


@pytest.mark.parametrize(("kind", "model", "root"), CASES)
async def test_seed_reaches_the_simulator(kind: str, model: str, root: str) -> None:
    assert sim_options(kind) == {"seed_header": "x-sim-seed"}
    provider = Provider(kind=kind, base_url="sim://", api_key_env="KEY")  # type: ignore[arg-type]
    async with open_simulator(SimConfig(time_scale=0), [("aime", DATA / "aime_2024.jsonl")]) as sim:
        adapter = make_adapter("p", provider, sim.base_url + root, "k", options=sim_options(kind))
        async with aiohttp.ClientSession() as session:
            first = await reasoning_of(session, adapter, model, 1)
            again = await reasoning_of(session, adapter, model, 1)
            other = await reasoning_of(session, adapter, model, 2)
    if kind == "openai_responses":
        assert first == again == other == ""  # o-series hides its reasoning: nothing to compare
        return
    assert first and first == again
    assert other != first
