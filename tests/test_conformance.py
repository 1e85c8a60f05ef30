"""The conformance suite: every adapter, on every dialect the simulator speaks, must pass all of it.

Each case is an adapter (built through the real registry) pointed at the built-in simulator on
loopback, with a simulated model of the matching profile. The suite checks that text and
reasoning reassemble exactly whatever the transport does (byte splits, ``\\r\\n``, comments and
keep-alives, unknown fields), that usage maps to what the simulator served, that every fault
lands in the right error class with its rate-limit reading, and that every rate-limit header
form is read. A dialect the simulator does not speak yet (HTTP 501) is skipped, not failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import msgspec
import pytest

from anytime_sim import SimConfig, Simulator, open_simulator
from runner.config.manifest import Provider
from runner.errors import CallTimeout, FatalProviderError, ProviderError, RateLimited, ServerError, StreamBroken
from runner.providers.base import Adapter
from runner.providers.registry import make_adapter
from runner.types import ChatRequest, Content, Finish, Message, RateLimitReading, Reasoning, Usage

KEY = "sk-conformance-0123456789abcdef"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    model: str
    options: dict[str, object] = field(default_factory=dict)
    reasoning_budget: int | None = None
    limit_headers: bool = True  # whether this host states limits in headers
    has_usage: bool = True
    dialect: str = "chat"
    hidden: bool = False  # o-series: plans its hidden reasoning to fit the cap, may stop before it


CASES = [
    Case("sim-openai", "sim", "sim-reasoner-large"),
    Case("sim-openai-plain", "sim", "sim-cot-small"),
    Case("sim-xai-profile", "sim", "sim-grok-3-mini"),
    Case("sim-deepseek-profile", "sim", "sim-deepseek-reasoner"),
    Case("sim-vllm-profile", "sim", "sim-gpt-oss-120b", limit_headers=False),
    Case("sim-together-profile", "sim", "sim-deepseek-r1-together"),
    Case("sim-llamacpp-profile", "sim", "sim-smollm2", limit_headers=False, has_usage=False),
    Case("sim-hidden", "sim", "sim-o4-mini", hidden=True),
    Case("openai", "openai", "sim-gpt-4.1"),
    Case("xai", "xai", "sim-grok-3-mini"),
    Case("deepseek", "deepseek", "sim-deepseek-reasoner"),
    Case("vllm", "openai_compatible", "sim-gpt-oss-120b", {"reasoning_field": "reasoning"}, limit_headers=False),
    Case("together", "together", "sim-deepseek-r1-together"),
    Case("llamacpp", "llamacpp", "sim-smollm2", limit_headers=False, has_usage=False),
    Case("responses", "openai_responses", "sim-o4-mini", dialect="responses", hidden=True),
    Case("responses-raw", "openai_responses", "sim-reasoner-large", dialect="responses"),
    Case("anthropic", "anthropic", "sim-claude-sonnet-4", reasoning_budget=1024, dialect="anthropic"),
    Case("anthropic-plain", "anthropic", "sim-claude-plain", dialect="anthropic"),
    Case("gemini", "gemini", "sim-gemini-2.5-flash", reasoning_budget=512, dialect="gemini", limit_headers=False),
    Case("gemini-dynamic", "gemini", "sim-gemini-2.5-flash", dialect="gemini", limit_headers=False),
]
IDS = [c.id for c in CASES]


@dataclass
class Result:
    reasoning: str
    content: str
    finishes: list[str]
    usages: list[Usage]
    limits: RateLimitReading
    status: int


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator(SimConfig(time_scale=0, chunk_tokens=4), []) as s:
        yield s


def make(case: Case, sim: Simulator, modes: str = "", key: str = KEY) -> Adapter:
    options: dict[str, object] = dict(case.options)
    if modes:
        options["extra_headers"] = {"x-sim-mode": modes}
    provider = Provider(kind=case.kind, api_key_env=None if case.kind in ("sim", "llamacpp") else "K")  # type: ignore[arg-type]
    return make_adapter(f"lane-{case.id}", provider, sim.base_url, key, options=options)


def effective_cap(case: Case, cap: int) -> int:
    """Anthropic needs max_tokens > budget_tokens: the cap is counted on top of the thinking budget."""
    return cap + case.reasoning_budget if case.reasoning_budget else cap


def request(case: Case, cap: int, seed: int = 1) -> ChatRequest:
    return ChatRequest(
        model=case.model,
        messages=(Message("user", "Find the sum of all positive integers n such that n^2 + 12n - 2007 is a square."),),
        max_output_tokens=effective_cap(case, cap),
        seed=seed,
        reasoning_budget=case.reasoning_budget,
    )


async def run(case: Case, sim: Simulator, *, cap: int = 600, modes: str = "", key: str = KEY) -> Result:
    adapter = make(case, sim, modes, key)
    try:
        async with aiohttp.ClientSession() as session, adapter.stream(session, request(case, cap)) as resp:
            events = [e async for e in resp.events]
    except ProviderError as exc:
        if exc.status == 501:
            pytest.skip(f"the simulator does not speak the {case.dialect} dialect yet")
        raise
    return Result(
        reasoning="".join(e.text for e in events if isinstance(e, Reasoning)),
        content="".join(e.text for e in events if isinstance(e, Content)),
        finishes=[e.reason for e in events if isinstance(e, Finish)],
        usages=[e for e in events if isinstance(e, Usage)],
        limits=resp.limits,
        status=resp.status,
    )


async def expect(case: Case, sim: Simulator, kind: type[ProviderError], modes: str) -> ProviderError:
    try:
        await run(case, sim, modes=modes)
    except kind as exc:
        assert KEY not in str(exc)
        assert isinstance(getattr(exc, "limits", None), RateLimitReading)
        assert type(exc).__module__ == "runner.errors"
        return exc
    raise AssertionError(f"{case.id}: x-sim-mode {modes} did not raise {kind.__name__}")


# ------------------------------------------------------------------ text, finish, usage


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_runs_to_a_natural_stop(case: Case, sim: Simulator) -> None:
    r = await run(case, sim, cap=20000)
    assert r.status == 200
    assert r.finishes == ["stop"]
    assert r.content.strip(), "a finished answer has visible content"
    stats = sim.stats().models[case.model]
    if case.has_usage:
        assert len(r.usages) == 1
        usage = r.usages[0]
        assert usage.output_tokens == stats.output_tokens
        assert usage.input_tokens == stats.input_tokens
        if usage.reasoning_tokens is not None:
            assert usage.reasoning_tokens == stats.reasoning_tokens
    else:
        assert r.usages == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_output_cap_ends_in_length(case: Case, sim: Simulator) -> None:
    r = await run(case, sim, cap=40)
    cap = effective_cap(case, 40)
    served = sim.stats().models[case.model].output_tokens
    if case.hidden or case.reasoning_budget:  # thinking planned to fit its budget may leave room to finish
        assert r.finishes in (["length"], ["stop"]) and served <= cap
    else:
        assert r.finishes == ["length"] and served == cap
    if case.has_usage:
        assert r.usages[0].output_tokens == served


@pytest.mark.parametrize("modes", ["split", "crlf", "comments", "unknown_fields", "split,crlf,comments,unknown_fields"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_transport_quirks_change_nothing(case: Case, sim: Simulator, modes: str) -> None:
    base = await run(case, sim, cap=300)
    quirky = await run(case, sim, cap=300, modes=modes)
    assert (quirky.reasoning, quirky.content, quirky.finishes) == (
        base.reasoning,
        base.content,
        base.finishes,
    )
    assert quirky.usages == base.usages


CHAT = [c for c in CASES if c.dialect == "chat"]


@pytest.mark.parametrize("case", CHAT, ids=[c.id for c in CHAT])
async def test_chat_stream_equals_the_non_streamed_answer(case: Case, sim: Simulator) -> None:
    """The streamed pieces put back together are exactly the simulator's whole answer."""
    adapter = make(case, sim)
    for cap in (300, 20000):
        streamed = await run(case, sim, cap=cap)
        body = adapter.payload(request(case, cap))  # type: ignore[attr-defined]
        body["stream"] = False
        async with aiohttp.ClientSession() as session:
            url = adapter.url(request(case, cap))  # type: ignore[attr-defined]
            async with session.post(url, json=body, headers=adapter.headers()) as resp:  # type: ignore[attr-defined]
                message = (await resp.json())["choices"][0]["message"]
        whole = message.get("content") or ""
        if whole.lstrip().startswith("<think>"):  # inline thinking: the splitter took the tags out
            start = whole.index("<think>") + len("<think>")
            end = whole.find("</think>")
            assert streamed.reasoning == (whole[start:] if end < 0 else whole[start:end])
            assert streamed.content == ("" if end < 0 else whole[end + len("</think>") :])
        else:
            assert streamed.content == whole
            assert streamed.reasoning == (message.get("reasoning_content") or message.get("reasoning") or "")


# ------------------------------------------------------------------ errors


FAULTS = [
    ("error_5xx", ServerError, True),
    ("error_5xx_noretry", ServerError, False),
    ("overloaded", ServerError, True),
    ("rate_limit", RateLimited, True),
    ("drop", StreamBroken, True),
    ("malformed", StreamBroken, True),
    ("error_in_stream", ServerError, True),
]


@pytest.mark.parametrize(("mode", "kind", "retryable"), FAULTS, ids=[f[0] for f in FAULTS])
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_every_fault_is_classified(
    case: Case, sim: Simulator, mode: str, kind: type[ProviderError], retryable: bool
) -> None:
    err = await expect(case, sim, kind, mode)
    assert err.retryable is retryable
    if mode in ("error_5xx", "error_5xx_noretry", "overloaded", "rate_limit"):
        assert err.status is not None and (err.status >= 500 or err.status == 429)
    if mode == "overloaded" and case.dialect == "anthropic":
        assert err.status == 529


@pytest.mark.parametrize("case", CHAT, ids=[c.id for c in CHAT])
async def test_done_without_finish_is_truncated(case: Case, sim: Simulator) -> None:
    r = await run(case, sim, modes="done_no_finish")
    assert r.finishes == ["truncated"]


async def test_unknown_model_is_fatal(sim: Simulator) -> None:
    case = Case("unknown", "sim", "no-such-model")
    err = await expect(case, sim, FatalProviderError, "")
    assert err.status == 404 and not err.retryable


# ------------------------------------------------------------------ rate-limit headers


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_rate_limit_headers_and_429(case: Case) -> None:
    async with open_simulator(SimConfig(time_scale=0, rpm=2, tpm=1_000_000), []) as limited:
        first = await run(case, limited, cap=50)
        if case.limit_headers:
            assert first.limits.limit_requests == 2
            assert first.limits.remaining_requests is not None and first.limits.remaining_requests <= 1
            assert first.limits.limit_tokens == 1_000_000
            assert first.limits.reset_requests_s is not None
        else:
            assert first.limits.limit_requests is None
        await run(case, limited, cap=50)
        err = await expect(case, limited, RateLimited, "")
        assert err.retryable
        assert err.retry_after_s is not None and err.retry_after_s > 0
        if case.limit_headers:
            assert err.limits.remaining_requests == 0  # type: ignore[attr-defined]


def test_cases_cover_every_registry_kind() -> None:
    from runner.providers.registry import KINDS

    assert {c.kind for c in CASES} | {"openrouter"} == set(KINDS)
    assert msgspec.json.encode([c.id for c in CASES])  # ids are plain strings


DIALECT_CASES = [c for c in CASES if c.id in ("sim-openai", "responses-raw", "anthropic-plain", "gemini-dynamic")]


@pytest.mark.parametrize("mode", ["stall_first", "stall"])
@pytest.mark.parametrize("case", DIALECT_CASES, ids=[c.id for c in DIALECT_CASES])
async def test_stalls_become_call_timeouts(case: Case, sim: Simulator, mode: str) -> None:
    """aiohttp's read timeout (set by the caller on the session) surfaces as our CallTimeout."""
    adapter = make(case, sim, mode)
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    with pytest.raises(CallTimeout) as info:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with adapter.stream(session, request(case, 300)) as resp:
                async for _event in resp.events:
                    pass
    assert info.value.retryable
    assert isinstance(getattr(info.value, "limits", None), RateLimitReading)
