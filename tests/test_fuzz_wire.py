"""Fuzzing what providers send (#12, reliability suite): SSE byte streams, the JSON of every adapter's
events, error bodies and rate-limit headers.

Whatever arrives, an adapter yields typed events whose numbers can be priced (token counts whole
and >= 0, a billed cost finite and >= 0) or raises one `ProviderError` whose one-line message
names the provider and what was wrong (a malformed event names the field it could not read);
never another exception, never a key. The lane then retries or stops on that error: a stream
can never crash a run. A few cases go over a real loopback socket.

The number of cases follows ``ANYTIME_FUZZ_EXAMPLES`` (`tests/fuzzing.py`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ProviderError
from runner.providers.base import Adapter
from runner.providers.classify import classify_http
from runner.providers.registry import KINDS, make_adapter
from runner.providers.sse import SSEParser
from runner.types import (
    ChatRequest,
    Content,
    Finish,
    Message,
    PromptUsage,
    RateLimitReading,
    Reasoning,
    StreamEvent,
    Usage,
)
from tests.fuzzing import count, fuzz

KEY = "sk-wire-fuzz-0123456789abcdef"
FINISHES = {"stop", "length", "content_filter", "truncated", "other"}


@dataclass(frozen=True)
class Kind:
    """A manifest provider table as `make_adapter` reads it."""

    kind: str
    reasoning_field: str | None = None


def adapter(kind: str) -> Adapter:
    return make_adapter(f"fuzz-{kind}", Kind(kind), "http://127.0.0.1:9/v1", KEY)


# ---- well-formed events of each protocol (the seeds the fuzzer mutates) --------------------------

CHAT = [
    ("message", {"choices": [{"index": 0, "delta": {"reasoning_content": "think "}}]}),
    ("message", {"choices": [{"index": 0, "delta": {"reasoning": "more "}}]}),
    ("message", {"choices": [{"index": 0, "delta": {"content": "<think>a</think>Answer: 1"}}]}),
    ("message", {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    (
        "message",
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 17,
                "completion_tokens_details": {"reasoning_tokens": 2},
                "prompt_tokens_details": {"cached_tokens": 3},
                "prompt_cache_hit_tokens": 3,
                "cost": 0.001,
                "cost_in_usd_ticks": 1000,
            },
        },
    ),
    ("message", {"error": {"message": "overloaded", "type": "server_error", "code": 529}}),
    ("message", "[DONE]"),
]
RESPONSES = [
    ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "hm"}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Answer: 1"}),
    (
        "response.completed",
        {
            "type": "response.completed",
            "response": {
                "status": "completed",
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 2},
                    "cost_in_usd_ticks": 10,
                },
            },
        },
    ),
    ("response.incomplete", {"type": "response.incomplete", "response": {"incomplete_details": {"reason": "x"}}}),
    ("response.failed", {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "m"}}}),
    ("error", {"type": "error", "code": "rate_limit_exceeded", "message": "slow down"}),
]
ANTHROPIC = [
    ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "content_block": {"type": "thinking", "thinking": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "hm"}}),
    ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Answer: 1"}}),
    ("ping", {"type": "ping"}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
    ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
]
GEMINI = [
    ("message", {"candidates": [{"content": {"parts": [{"text": "hm", "thought": True}]}}]}),
    ("message", {"candidates": [{"content": {"parts": [{"text": "Answer: 1"}]}}]}),
    (
        "message",
        {
            "candidates": [{"content": {"parts": []}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 2,
                "cachedContentTokenCount": 0,
            },
        },
    ),
    ("message", {"promptFeedback": {"blockReason": "SAFETY"}}),
    ("message", {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}),
]
SEEDS: dict[str, list[tuple[str, object]]] = {
    "openai_responses": RESPONSES,
    "anthropic": ANTHROPIC,
    "gemini": GEMINI,
}
ADAPTER_KINDS = sorted(KINDS)  # every kind: each OpenAI-compatible host has its own options


def seeds(kind: str) -> list[tuple[str, object]]:
    return SEEDS.get(kind, CHAT)


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([-1, 0, 1, 2**31, 2**63 - 1, 2**64]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([-0.5, 1e308, -1e308, 5e-324]),
        st.text(max_size=12),
        st.sampled_from(["stop", "length", "STOP", "end_turn", "[DONE]", "thinking_delta", "text_delta", ""]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def paths(doc: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += paths(value, (*prefix, i))
    return found


def mutated(doc: object, mutations: list[tuple[str, int, object]]) -> object:
    doc = copy.deepcopy(doc)
    for op, where, value in mutations:
        found = paths(doc)
        if op == "number":  # a numeric field, most likely a token count or a cost
            found = [p for p in found if _at(doc, p) is not True and isinstance(_at(doc, p), int | float)] or found
            op = "set"
        if not found:
            return value if op == "set" else doc
        path = found[where % len(found)]
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if op == "delete":
            del parent[path[-1]]
        elif op == "set":
            parent[path[-1]] = value
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]]["x"] = value
    return doc


# the numbers that price a call: what a usage or cost field may be set to
NUMBERS = st.one_of(
    st.sampled_from([-1, -5, 0, 2**31, 2**53, 2**63 - 1, 2**63, 2**64, -0.5, 0.5, 1e308, -1e308, 5e-324, "7", None]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
)
MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["set", "delete", "add"]), st.integers(min_value=0), JSON),
        st.tuples(st.just("number"), st.integers(min_value=0), NUMBERS),
    ),
    max_size=3,
)


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


EVENT = st.one_of(
    st.tuples(st.just("seed"), st.integers(min_value=0), MUTATIONS),
    st.tuples(st.just("json"), st.integers(min_value=0), JSON),
    st.tuples(st.just("text"), st.integers(min_value=0), st.text(max_size=20)),
)


def sse_bytes(kind: str, events: list[tuple[str, int, Any]], keep_event_names: bool) -> bytes:
    out = bytearray()
    for what, which, detail in events:
        name, seed = seeds(kind)[which % len(seeds(kind))]
        if what == "seed":
            data = seed if isinstance(seed, str) else json.dumps(mutated(seed, detail))
        elif what == "json":
            data = json.dumps(detail)
        else:
            data = detail.replace("\r", " ").replace("\n", " ")
        if keep_event_names and name != "message":
            out += f"event: {name}\n".encode()
        out += f"data: {data}\n\n".encode()
    return bytes(out)


# ---- running an adapter over bytes, as the wire layer does ---------------------------------------

LOOP = asyncio.new_event_loop()


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            yield data[start:point]
            start = point


async def decode_bytes(a: Adapter, chunks: list[bytes], out: list[StreamEvent]) -> None:
    """The adapter's own read loop over a body that arrives in these reads, then ends."""
    queue = list(chunks)

    async def read() -> bytes:
        return queue.pop(0) if queue else b""

    async for batch in a.batches(read, RateLimitReading()):  # type: ignore[attr-defined]
        out.extend(batch)


def check_outcome(kind: str, run: Callable[[list[StreamEvent]], object]) -> None:
    """Typed events a price can be computed from, then at most one clear `ProviderError`.

    The events a stream gave before it broke are checked too: a broken stream's usage is priced.
    """
    events: list[StreamEvent] = []
    try:
        run(events)
    except ProviderError as exc:
        message = str(exc)
        assert message.startswith(f"fuzz-{kind}: "), message
        assert KEY not in message
        assert "\n" not in message and len(message) < 1000, message
    for event in events:
        assert isinstance(event, Reasoning | Content | Finish | Usage | PromptUsage), event
        if isinstance(event, PromptUsage):  # a stream's prompt side, stated as it starts (Anthropic)
            for field in ("input_tokens", "cached_input_tokens", "cache_write_input_tokens"):
                value = getattr(event, field)
                assert isinstance(value, int) and value >= 0, (field, event)
        elif isinstance(event, Usage):
            for field in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_input_tokens"):
                value = getattr(event, field)
                assert isinstance(value, int) and value >= 0, (field, event)
            assert event.reasoning_tokens is None or event.reasoning_tokens >= 0, event
            assert event.billed_usd is None or (math.isfinite(event.billed_usd) and event.billed_usd >= 0), event
        elif isinstance(event, Finish):
            assert event.reason in FINISHES, event
        else:
            assert isinstance(event.text, str)


@given(
    kind=st.sampled_from(ADAPTER_KINDS),
    events=st.lists(EVENT, min_size=1, max_size=6),
    keep_event_names=st.booleans(),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
    cuts=st.lists(st.integers(min_value=0), max_size=5),
)
@fuzz("provider JSON", 0.17)
def test_fuzzed_provider_events(
    kind: str, events: list[tuple[str, int, Any]], keep_event_names: bool, cut: int | None, cuts: list[int]
) -> None:
    count("provider JSON")
    data = sse_bytes(kind, events, keep_event_names)
    if cut is not None:
        data = data[: cut % (len(data) + 1)]  # the connection ends anywhere
    check_outcome(kind, lambda out: LOOP.run_until_complete(decode_bytes(adapter(kind), list(split(data, cuts)), out)))


def complete_stream(kind: str) -> list[tuple[str, object]]:
    """A whole well-formed stream of the protocol: every seed but the errors and the alternatives."""
    skip = ("error", "response.failed", "response.incomplete", "ping")
    events = [(n, d) for n, d in seeds(kind) if n not in skip and not (isinstance(d, dict) and "error" in d)]
    return [(n, d) for n, d in events if not (isinstance(d, dict) and "promptFeedback" in d)]


@given(kind=st.sampled_from(ADAPTER_KINDS), where=st.integers(min_value=0), value=NUMBERS)
@fuzz("usage numbers", 0.1)
def test_fuzzed_usage_numbers(kind: str, where: int, value: object) -> None:
    """The numbers a call is priced from: any value in any numeric field of a whole stream."""
    count("usage numbers")
    stream = complete_stream(kind)
    numeric = [
        (i, path)
        for i, (_, doc) in enumerate(stream)
        for path in paths(doc)
        if isinstance(_at(doc, path), int | float) and not isinstance(_at(doc, path), bool)
    ]
    i, path = numeric[where % len(numeric)]
    doc = copy.deepcopy(stream[i][1])
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    stream[i] = (stream[i][0], doc)
    data = b"".join(
        (f"event: {n}\n".encode() if n != "message" else b"")
        + b"data: "
        + (d.encode() if isinstance(d, str) else json.dumps(d).encode())
        + b"\n\n"
        for n, d in stream
    )
    check_outcome(kind, lambda out: LOOP.run_until_complete(decode_bytes(adapter(kind), [data], out)))


SSE_PIECES = st.sampled_from(
    [
        *(b"data:", b"data: ", b"event: ", b"id: 1", b"retry: 10", b":", b"\n", b"\r", b"\r\n", b"\n\n"),
        *(b"{", b"}", b"[DONE]", b'{"choices":[', b'"delta":{"content":"x"}', b'{"type":"message_stop"}'),
        *(b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"),
    ]
)


@given(
    kind=st.sampled_from(ADAPTER_KINDS),
    pieces=st.lists(st.one_of(SSE_PIECES, st.binary(max_size=8)), max_size=30),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
@fuzz("SSE bytes", 0.13)
def test_fuzzed_sse_bytes(kind: str, pieces: list[bytes], cuts: list[int]) -> None:
    count("SSE bytes")
    data = b"".join(pieces)
    # the parser gives the same events however the bytes are split across reads
    whole = SSEParser().feed(data)
    parser = SSEParser()
    assert [e for chunk in split(data, cuts) for e in parser.feed(chunk)] == whole
    check_outcome(kind, lambda out: LOOP.run_until_complete(decode_bytes(adapter(kind), list(split(data, cuts)), out)))


# ---- error bodies and rate-limit headers -----------------------------------------------------------

HEADER_NAMES = [
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
]
HEADER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=24),
    st.sampled_from(
        [
            *("inf", "-inf", "nan", "1e400", "-1", "0", "1.5", "6m0s", "1h2m3.5s", "500ms", "1e308h", "99999999999h"),
            *("2026-12-06T10:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+00:00"),
            *("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 99999 07:28:00 GMT", "true", "false", "", " "),
        ]
    ),
)
ERROR_BODIES = st.one_of(
    st.binary(max_size=60),
    st.builds(
        lambda body: json.dumps(body).encode(),
        st.one_of(
            JSON,
            st.fixed_dictionaries(
                {"error": st.one_of(JSON, st.fixed_dictionaries({"message": JSON, "type": JSON, "code": JSON}))}
            ),
            st.fixed_dictionaries({"error": st.fixed_dictionaries({"details": st.lists(JSON, max_size=2)})}),
        ),
    ),
    st.just(json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode()),
)


@given(
    kind=st.sampled_from(ADAPTER_KINDS),
    status=st.integers(min_value=300, max_value=599),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=6),
    body=ERROR_BODIES,
)
@fuzz("error bodies and headers", 0.09)
def test_fuzzed_error_answers(kind: str, status: int, headers: dict[str, str], body: bytes) -> None:
    count("error bodies and headers")
    a = adapter(kind)
    limits = a.read_limits(headers)
    for name in ("limit_requests", "remaining_requests", "limit_tokens", "remaining_tokens"):
        value = getattr(limits, name)
        assert value is None or (isinstance(value, int) and value >= 0), (name, headers)
    for name in ("reset_requests_s", "reset_tokens_s", "retry_after_s"):
        value = getattr(limits, name)
        assert value is None or (math.isfinite(value) and value >= 0), (name, headers)
    exc = classify_http(a.provider, status, headers, body, limits, secret=KEY)
    assert isinstance(exc, ProviderError)
    message = str(exc)
    assert message.startswith(f"fuzz-{kind}: HTTP {status}"), message
    assert KEY not in message and "\n" not in message


# ---- a few over a real socket: aiohttp reading what a loopback server writes ---------------------


class Server:
    """A loopback HTTP server that answers every POST with the next prepared response."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=self.status, headers={"content-type": "text/event-stream", **self.headers})
        await resp.prepare(request)
        for chunk in self.chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    LOOP.run_until_complete(s.start())
    yield s
    assert s.runner is not None
    LOOP.run_until_complete(s.runner.cleanup())


async def over_socket(kind: str, url: str, out: list[StreamEvent]) -> None:
    a = make_adapter(f"fuzz-{kind}", Kind(kind), url + "/v1", KEY)
    request = ChatRequest(model="m", messages=(Message("user", "q"),), max_output_tokens=16)
    async with aiohttp.ClientSession() as session, a.stream(session, request) as resp:
        async for event in resp.events:
            out.append(event)


@given(
    kind=st.sampled_from(ADAPTER_KINDS),
    events=st.lists(EVENT, min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0), max_size=4),
    status=st.sampled_from([200, 200, 200, 400, 401, 429, 500, 529]),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=3),
)
@fuzz("over a socket", 0.01, least=5)
def test_fuzzed_streams_over_a_real_socket(
    server: Server,
    kind: str,
    events: list[tuple[str, int, Any]],
    cuts: list[int],
    status: int,
    headers: dict[str, str],
) -> None:
    count("over a socket")
    data = sse_bytes(kind, events, keep_event_names=True)
    server.status, server.headers, server.chunks = status, headers, list(split(data, cuts))
    check_outcome(kind, lambda out: LOOP.run_until_complete(over_socket(kind, server.url, out)))
