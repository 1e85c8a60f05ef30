"""The official SDKs and our adapters read the same simulator streams and see the same things.

The ``openai`` and ``anthropic`` Python SDKs (test-only dependencies) are pointed at the built-in
simulator next to our adapters. For each simulated model they must agree on the text, the
reasoning (``reasoning_content`` / ``reasoning`` arrive through the SDK's ``model_extra``), the
usage and the error class. When they disagree, the simulator speaks the dialect wrongly (or our
adapter reads it wrongly): either way this test is where it shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from anytime_sim import SimConfig, Simulator, open_simulator
from runner.config.manifest import Provider
from runner.errors import FatalProviderError, ProviderError, RateLimited, ServerError, StreamBroken
from runner.providers.registry import make_adapter
from runner.types import ChatRequest, Content, Finish, Message, Reasoning, Usage

openai = pytest.importorskip("openai", reason="the `openai` SDK (test extra) is not installed")
anthropic = pytest.importorskip("anthropic", reason="the `anthropic` SDK (test extra) is not installed")

KEY = "sk-fidelity-0123456789abcdef"
PROMPT = "How many positive divisors does 2024 have?"


@dataclass
class Seen:
    reasoning: str = ""
    content: str = ""
    finish: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator(SimConfig(time_scale=0), []) as s:
        yield s


async def ours(sim: Simulator, kind: str, model: str, cap: int, modes: str = "", budget: int | None = None) -> Seen:
    options = {"extra_headers": {"x-sim-mode": modes}} if modes else {}
    adapter = make_adapter("lane", Provider(kind=kind, api_key_env="K"), sim.base_url, KEY, options=options)  # type: ignore[arg-type]
    request = ChatRequest(
        model=model,
        messages=(Message("user", PROMPT),),
        max_output_tokens=cap,
        seed=7,
        reasoning_budget=budget,
    )
    seen = Seen()
    async with aiohttp.ClientSession() as session, adapter.stream(session, request) as resp:
        async for e in resp.events:
            if isinstance(e, Reasoning):
                seen.reasoning += e.text
            elif isinstance(e, Content):
                seen.content += e.text
            elif isinstance(e, Finish):
                seen.finish = e.reason
            elif isinstance(e, Usage):
                seen.input_tokens, seen.output_tokens = e.input_tokens, e.output_tokens
                seen.reasoning_tokens, seen.cached_tokens = e.reasoning_tokens, e.cached_input_tokens
    return seen


# ------------------------------------------------------------------ OpenAI Chat Completions

OPENAI_MODELS = [
    ("sim-reasoner-large", "openai"),
    ("sim-gpt-4.1", "openai"),
    ("sim-grok-3-mini", "xai"),
    ("sim-deepseek-reasoner", "deepseek"),
    ("sim-gpt-oss-120b", "openai_compatible"),
    ("sim-o4-mini", "openai"),
]


def openai_client(sim: Simulator, modes: str = "") -> openai.AsyncOpenAI:
    headers = {"x-sim-mode": modes} if modes else None
    return openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key=KEY, max_retries=0, default_headers=headers)


async def openai_sdk(sim: Simulator, model: str, cap: int, token_param: str, modes: str = "") -> Seen:
    seen = Seen()
    async with openai_client(sim, modes) as client:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
            seed=7,
            **{token_param: cap},
        )
        async for chunk in stream:
            for choice in chunk.choices:
                extra = choice.delta.model_extra or {}
                seen.reasoning += extra.get("reasoning_content") or extra.get("reasoning") or ""
                seen.content += choice.delta.content or ""
                seen.finish = choice.finish_reason or seen.finish
            if chunk.usage is not None:
                u = chunk.usage
                seen.input_tokens, seen.output_tokens = u.prompt_tokens, u.completion_tokens
                details = u.completion_tokens_details
                seen.reasoning_tokens = details.reasoning_tokens if details else None
                cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else None
                seen.cached_tokens = cached or 0
    return seen


@pytest.mark.parametrize("cap", [200, 20000])
@pytest.mark.parametrize(("model", "kind"), OPENAI_MODELS)
async def test_openai_sdk_sees_what_we_see(sim: Simulator, model: str, kind: str, cap: int) -> None:
    token_param = "max_tokens" if kind in ("deepseek", "openai_compatible") else "max_completion_tokens"
    sdk = await openai_sdk(sim, model, cap, token_param)
    mine = await ours(sim, kind, model, cap)
    assert (mine.reasoning, mine.content, mine.finish) == (sdk.reasoning, sdk.content, sdk.finish)
    assert (mine.input_tokens, mine.cached_tokens, mine.reasoning_tokens) == (
        sdk.input_tokens,
        sdk.cached_tokens,
        sdk.reasoning_tokens,
    )
    assert sdk.output_tokens is not None and mine.output_tokens is not None
    if kind == "xai":  # the SDK shows the raw completion_tokens, which leave reasoning out on xAI
        assert mine.output_tokens == sdk.output_tokens + (sdk.reasoning_tokens or 0)
    else:
        assert mine.output_tokens == sdk.output_tokens


OPENAI_ERRORS = [
    ("rate_limit", "RateLimitError", RateLimited),
    ("error_5xx", "InternalServerError", ServerError),
    ("overloaded", "InternalServerError", ServerError),
    ("error_in_stream", "APIError", ServerError),
]


@pytest.mark.parametrize(("mode", "sdk_error", "our_error"), OPENAI_ERRORS, ids=[e[0] for e in OPENAI_ERRORS])
async def test_openai_sdk_error_types_match(sim: Simulator, mode: str, sdk_error: str, our_error: type) -> None:
    with pytest.raises(getattr(openai, sdk_error)):
        await openai_sdk(sim, "sim-reasoner-large", 300, "max_completion_tokens", modes=mode)
    with pytest.raises(our_error):
        await ours(sim, "openai", "sim-reasoner-large", 300, modes=mode)


async def test_openai_sdk_unknown_model_and_noretry(sim: Simulator) -> None:
    with pytest.raises(openai.NotFoundError):
        await openai_sdk(sim, "no-such-model", 50, "max_completion_tokens")
    with pytest.raises(FatalProviderError):
        await ours(sim, "openai", "no-such-model", 50)
    with pytest.raises(openai.InternalServerError) as sdk_info:
        await openai_sdk(sim, "sim-reasoner-large", 50, "max_completion_tokens", modes="error_5xx_noretry")
    assert sdk_info.value.response.headers.get("x-should-retry") == "false"
    with pytest.raises(ServerError) as info:
        await ours(sim, "openai", "sim-reasoner-large", 50, modes="error_5xx_noretry")
    assert info.value.retryable is False  # x-should-retry: false, as the SDK would honour


async def test_openai_sdk_and_we_both_fail_a_dropped_stream(sim: Simulator) -> None:
    with pytest.raises(Exception) as sdk_info:  # the SDK leaks httpx's transport error here
        await openai_sdk(sim, "sim-reasoner-large", 2000, "max_completion_tokens", modes="drop")
    assert not isinstance(sdk_info.value, AssertionError)
    with pytest.raises(StreamBroken):
        await ours(sim, "openai", "sim-reasoner-large", 2000, modes="drop")


# ------------------------------------------------------------------ Anthropic Messages

ANTHROPIC_MODELS = [("sim-claude-sonnet-4", 1024), ("sim-claude-plain", None)]


async def anthropic_sdk(sim: Simulator, model: str, cap: int, budget: int | None, modes: str = "") -> Seen:
    seen = Seen()
    headers = {"x-sim-mode": modes} if modes else None
    kwargs: dict[str, object] = {}
    if budget is not None:
        kwargs["thinking"] = {"type": "enabled", "budget_tokens": budget}
    async with anthropic.AsyncAnthropic(
        base_url=sim.base_url, api_key=KEY, max_retries=0, default_headers=headers
    ) as client:
        stream = await client.messages.create(
            model=model, max_tokens=cap, messages=[{"role": "user", "content": PROMPT}], stream=True, **kwargs
        )
        input_parts = (0, 0, 0)
        async for event in stream:
            if event.type == "message_start":
                u = event.message.usage
                input_parts = (
                    u.input_tokens,
                    u.cache_read_input_tokens or 0,
                    u.cache_creation_input_tokens or 0,
                )
            elif event.type == "content_block_delta":
                if event.delta.type == "thinking_delta":
                    seen.reasoning += event.delta.thinking
                elif event.delta.type == "text_delta":
                    seen.content += event.delta.text
            elif event.type == "message_delta":
                seen.finish = event.delta.stop_reason
                seen.output_tokens = event.usage.output_tokens
        seen.input_tokens = sum(input_parts)
        seen.cached_tokens = input_parts[1]
    return seen


@pytest.mark.parametrize("cap", [200, 20000])
@pytest.mark.parametrize(("model", "budget"), ANTHROPIC_MODELS)
async def test_anthropic_sdk_sees_what_we_see(sim: Simulator, model: str, budget: int | None, cap: int) -> None:
    cap = cap + (budget or 0)
    sdk = await anthropic_sdk(sim, model, cap, budget)
    mine = await ours(sim, "anthropic", model, cap, budget=budget)
    assert (mine.reasoning, mine.content) == (sdk.reasoning, sdk.content)
    assert mine.finish == {"end_turn": "stop", "max_tokens": "length"}[sdk.finish or ""]
    assert (mine.input_tokens, mine.output_tokens, mine.cached_tokens) == (
        sdk.input_tokens,
        sdk.output_tokens,
        sdk.cached_tokens,
    )


ANTHROPIC_ERRORS = [
    ("rate_limit", "RateLimitError", RateLimited),
    ("error_5xx", "InternalServerError", ServerError),
    ("overloaded", "OverloadedError", ServerError),  # 529
    ("error_in_stream", "APIStatusError", ServerError),  # overloaded_error inside a 200 stream
]


@pytest.mark.parametrize(("mode", "sdk_error", "our_error"), ANTHROPIC_ERRORS, ids=[e[0] for e in ANTHROPIC_ERRORS])
async def test_anthropic_sdk_error_types_match(sim: Simulator, mode: str, sdk_error: str, our_error: type) -> None:
    with pytest.raises(getattr(anthropic, sdk_error)):
        await anthropic_sdk(sim, "sim-claude-plain", 300, None, modes=mode)
    with pytest.raises(our_error) as info:
        await ours(sim, "anthropic", "sim-claude-plain", 300, modes=mode)
    assert isinstance(info.value, ProviderError) and info.value.retryable


# ------------------------------------------------------------------ OpenAI Responses


async def responses_sdk(sim: Simulator, model: str, cap: int) -> Seen:
    seen = Seen()
    async with openai_client(sim) as client:
        stream = await client.responses.create(
            model=model,
            input=[{"role": "user", "content": PROMPT}],
            stream=True,
            max_output_tokens=cap,
            store=False,
        )
        async for event in stream:
            if event.type in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
                seen.reasoning += event.delta
            elif event.type == "response.output_text.delta":
                seen.content += event.delta
            elif event.type in ("response.completed", "response.incomplete"):
                details = event.response.incomplete_details
                seen.finish = "stop" if event.type == "response.completed" else (details.reason if details else None)
                u = event.response.usage
                if u is not None:
                    seen.input_tokens, seen.output_tokens = u.input_tokens, u.output_tokens
                    seen.reasoning_tokens = u.output_tokens_details.reasoning_tokens
                    seen.cached_tokens = u.input_tokens_details.cached_tokens
    return seen


@pytest.mark.parametrize("cap", [200, 20000])
@pytest.mark.parametrize("model", ["sim-o4-mini", "sim-reasoner-large"])
async def test_openai_sdk_responses_sees_what_we_see(sim: Simulator, model: str, cap: int) -> None:
    sdk = await responses_sdk(sim, model, cap)
    mine = await ours(sim, "openai_responses", model, cap)
    assert (mine.reasoning, mine.content) == (sdk.reasoning, sdk.content)
    assert mine.finish == {"stop": "stop", "max_output_tokens": "length"}[sdk.finish or ""]
    assert (mine.input_tokens, mine.output_tokens, mine.reasoning_tokens, mine.cached_tokens) == (
        sdk.input_tokens,
        sdk.output_tokens,
        sdk.reasoning_tokens,
        sdk.cached_tokens,
    )
