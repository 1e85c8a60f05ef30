"""Prompt caching per provider, over loopback: the simulator caches as each provider documents it
(`anytime_sim.cache`), reports it in each wire format's own usage fields, and the runner's adapters
read those fields into one `Usage` that prices cached and written tokens at their rates."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import msgspec
import pytest
from test_sim_support import aime_statement, sse_events, write_datasets

from anytime_sim import SimConfig, open_simulator
from runner.ledger.prices import PriceTable, usage_cost
from runner.providers.registry import adapter_options, make_adapter
from runner.types import CachePoint, ChatRequest, Message, PromptUsage, Usage

LONG = " ".join(f"Fact {i}: the value of item {i} is {i * 7}." for i in range(160))  # ~2,000 tokens
KEY = {"Authorization": "Bearer k"}


@pytest.fixture
def datasets(tmp_path: Path) -> list[tuple[str, Path]]:
    return write_datasets(tmp_path / "data")


@pytest.fixture
async def sim(datasets):
    async with open_simulator(SimConfig(time_scale=0, chunk_tokens=8), datasets) as s:
        yield s


async def usage_of(sim, kind: str, model: str, messages: tuple[Message, ...], points=()) -> tuple[Usage, list]:
    """One call through the runner's own adapter for ``kind``: its normalised usage and events."""
    base = sim.base_url + ("/v1beta" if kind == "gemini" else "/v1")
    adapter = make_adapter(kind, SimpleNamespace(kind=kind, reasoning_field=None), base, "k")
    request = ChatRequest(model=model, messages=messages, max_output_tokens=16, cache_points=tuple(points))
    async with aiohttp.ClientSession() as session, adapter.stream(session, request) as response:
        events = [e async for e in response.events]
    usages = [e for e in events if isinstance(e, Usage)]
    assert usages, f"{kind}: no usage"
    return usages[-1], events


def prompt(extra: str = "") -> tuple[Message, ...]:
    return (Message("user", LONG + "\n\n" + aime_statement(3) + extra),)


@pytest.mark.parametrize(
    ("kind", "model", "minimum", "step"),
    [
        ("openai", "sim-gpt-4.1", 1024, 128),
        ("openai_responses", "sim-gpt-4.1", 1024, 128),
        ("xai", "sim-grok-3", 128, 128),
        ("deepseek", "sim-deepseek-reasoner", 64, 64),
        ("gemini", "sim-gemini-2.5-flash", 1024, 64),
    ],
)
async def test_automatic_caches_count_in_their_steps(sim, kind, model, minimum, step):
    first, _ = await usage_of(sim, kind, model, prompt())
    assert first.cached_input_tokens == 0 and first.input_tokens > 1024
    again, _ = await usage_of(sim, kind, model, prompt(" Be brief."))
    cached = again.cached_input_tokens
    assert cached >= minimum and cached % step == 0
    assert 0 < again.input_tokens - cached < step + 16  # all but the changed tail
    short, _ = await usage_of(sim, kind, model, (Message("user", "Name a prime number."),))
    assert short.cached_input_tokens == 0  # xAI's 128-token minimum is more than this prompt
    # the part of the bill a cache hit lowers, at the model's cached rate
    price = PriceTable.load().lookup(kind, model) or PriceTable.load().lookup("*", model)
    assert price is not None and price.cached_input is not None
    uncached = msgspec.structs.replace(again, cached_input_tokens=0)
    assert usage_cost(price, uncached) - usage_cost(price, again) == pytest.approx(
        cached * (price.input - price.cached_input) / 1e6
    )


async def test_each_wire_format_reports_its_own_fields(sim):
    async def raw(path: str, body: dict, headers: dict) -> list[dict]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(sim.base_url + path, json=body, headers=headers) as r,
        ):
            return [json.loads(d) for _, d in sse_events(await r.read()) if d != "[DONE]"]

    chat = {"messages": [{"role": "user", "content": LONG}], "stream": True, "stream_options": {"include_usage": True}}
    for _ in range(2):
        deepseek = await raw("/v1/chat/completions", {"model": "sim-deepseek-reasoner", **chat}, KEY)
    usage = deepseek[-1]["usage"]
    assert usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]
    assert usage["prompt_cache_hit_tokens"] % 64 == 0 and usage["prompt_cache_hit_tokens"] > 0
    gemini = {"contents": [{"role": "user", "parts": [{"text": LONG}]}], "generationConfig": {"maxOutputTokens": 8}}
    path = "/v1beta/models/sim-gemini-2.5-flash:streamGenerateContent?alt=sse"
    for _ in range(2):
        events = await raw(path, gemini, {"x-goog-api-key": "k"})
    meta = events[-1]["usageMetadata"]
    assert meta["cachedContentTokenCount"] >= 1024 and meta["promptTokenCount"] > meta["cachedContentTokenCount"]


async def test_a_prefix_is_readable_only_once_its_writer_has_started_answering(datasets):
    """A request sent while the first is still in its prefill misses (the provider has not written
    the prefix yet); once the first one's output has begun, the same prompt hits."""
    async with open_simulator(SimConfig(time_scale=5, chunk_tokens=8), datasets) as slow:
        body = {"model": "sim-gpt-4.1", "messages": [{"role": "user", "content": LONG}], "max_tokens": 4}
        async with aiohttp.ClientSession(headers=KEY) as session:
            url = slow.base_url + "/v1/chat/completions"
            async with session.post(url, json={**body, "stream": True}) as first:
                async with session.post(url, json=body) as during:
                    # the second request is admitted at once; its usage comes after its own output
                    early = (await during.json())["usage"]["prompt_tokens_details"]["cached_tokens"]
                async for line in first.content:
                    if b'"content":"' in line and b'"content":""' not in line:
                        break  # the first one's first output token has left
                async with session.post(url, json=body) as after:
                    late = (await after.json())["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert early == 0 and late >= 1024


async def test_anthropic_caches_only_at_breakpoints_and_bills_writes(sim):
    messages = prompt()
    split = len(LONG)  # a prefix every request shares: the long context
    plain, _ = await usage_of(sim, "anthropic", "sim-claude-plain", messages)
    assert (plain.cached_input_tokens, plain.cache_write_input_tokens) == (0, 0)  # nothing marked
    first, events = await usage_of(sim, "anthropic", "sim-claude-plain", messages, [CachePoint(0, split)])
    assert first.cache_write_input_tokens > 1024 and first.cached_input_tokens == 0
    assert any(isinstance(e, PromptUsage) and e.cache_write_input_tokens for e in events)  # from message_start
    again, _ = await usage_of(sim, "anthropic", "sim-claude-plain", prompt(" Be brief."), [CachePoint(0, split)])
    assert again.cached_input_tokens == first.cache_write_input_tokens and again.cache_write_input_tokens == 0
    short, _ = await usage_of(
        sim, "anthropic", "sim-claude-plain", (Message("user", "Name a prime. Then another."),), [CachePoint(0, 13)]
    )
    assert (short.cached_input_tokens, short.cache_write_input_tokens) == (0, 0)  # under 1,024 tokens
    price = PriceTable.load().lookup("anthropic", "sim-claude-plain")
    assert price is not None and price.cache_write_input == 3.75 and price.cached_input == 0.30
    wrote = first.cache_write_input_tokens * 3.75 + (first.input_tokens - first.cache_write_input_tokens) * 3.0
    assert usage_cost(price, first) == pytest.approx((wrote + first.output_tokens * 15.0) / 1e6)


async def test_anthropic_reads_a_shorter_prefix_within_its_lookback_and_writes_the_rest(sim):
    """The next forced answer repeats the previous one's prompt up to its cut and goes on: it reads
    what the previous one wrote (a block boundary of its own) and writes only its longer prefix."""
    head = LONG + "\n<reasoning_so_far>\n"
    cut1, cut2 = "First I try small cases. " * 20, "Then I look for a pattern. " * 20
    tail = "\n</reasoning_so_far>\nAnswer now."
    first_text = head + cut1 + tail
    first, _ = await usage_of(
        sim, "anthropic", "sim-claude-plain", (Message("user", first_text),), [CachePoint(0, len(head + cut1))]
    )
    second_text = head + cut1 + cut2 + tail
    points = [CachePoint(0, len(head + cut1)), CachePoint(0, len(head + cut1 + cut2))]
    second, _ = await usage_of(sim, "anthropic", "sim-claude-plain", (Message("user", second_text),), points)
    assert second.cached_input_tokens == first.cache_write_input_tokens > 1024
    assert 0 < second.cache_write_input_tokens < second.input_tokens - second.cached_input_tokens


async def test_anthropic_refuses_a_fifth_breakpoint(sim):
    blocks = [{"type": "text", "text": f"part {i} ", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    body = {"model": "sim-claude-plain", "max_tokens": 8, "messages": [{"role": "user", "content": blocks}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"}) as r:
            assert r.status == 400 and "maximum of 4" in (await r.json())["error"]["message"]


def test_the_anthropic_adapter_marks_the_last_four_points_as_block_ends() -> None:
    adapter = make_adapter(
        "anthropic", SimpleNamespace(kind="anthropic", reasoning_field=None), "http://x", "k", options={}
    )
    text = "abcdefghij"
    points = tuple(CachePoint(0, i) for i in (2, 4, 6, 8, 9))
    body = adapter.payload(
        ChatRequest(model="m", messages=(Message("user", text),), max_output_tokens=8, cache_points=points)
    )
    (turn,) = body["messages"]
    blocks = turn["content"]
    assert "".join(b["text"] for b in blocks) == text
    assert [b["text"] for b in blocks if "cache_control" in b] == ["abcd", "ef", "gh", "i"]  # ends at 4, 6, 8, 9
    assert blocks[-1] == {"type": "text", "text": "j"}
    assert adapter_options("anthropic") == {}
    plain = adapter.payload(ChatRequest(model="m", messages=(Message("user", text),), max_output_tokens=8))
    assert plain["messages"][0]["content"] == text  # no point, no blocks
