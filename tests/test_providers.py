"""Adapters against a loopback replay server serving the documented wire examples (providers.md).

The replay server answers each request with bytes we choose (status, headers, body pieces, an
abrupt cut), so every protocol's mapping is tested on the real transport without the simulator.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest
from aiohttp import web

from runner.config.manifest import Provider
from runner.errors import (
    ConfigurationRejected,
    EndpointUnreachable,
    FatalProviderError,
    ProviderError,
    RateLimited,
    ServerError,
    StreamBroken,
)
from runner.providers.base import Adapter
from runner.providers.registry import make_adapter
from runner.types import ChatRequest, Content, Finish, Message, Reasoning, StreamEvent, Usage

KEY = "sk-test-SECRET-0123456789"


class Reply:
    def __init__(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        chunks: Sequence[bytes] = (),
        cut: bool = False,
    ) -> None:
        self.status, self.headers, self.chunks, self.cut = status, headers or {}, chunks, cut


class Replay:
    """A loopback HTTP server that records requests and plays queued replies."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[tuple[str, dict[str, str], dict[str, object]]] = []
        self.url = ""

    def add(self, reply: Reply) -> None:
        self.replies.append(reply)

    @property
    def last_body(self) -> dict[str, object]:
        return self.requests[-1][2]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.path_qs, dict(request.headers), json.loads(body or b"{}")))
        reply = self.replies.popleft()
        if reply.status != 200:
            return web.Response(status=reply.status, headers=reply.headers, body=b"".join(reply.chunks))
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream", **reply.headers})
        await resp.prepare(request)
        for chunk in reply.chunks:
            await resp.write(chunk)
        if reply.cut:
            assert request.transport is not None
            request.transport.close()  # a FIN without the chunked body's end: data sent so far arrives
            return resp
        await resp.write_eof()
        return resp


@pytest.fixture
async def replay() -> AsyncIterator[Replay]:
    server = Replay()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


REQ = ChatRequest(
    model="m-1",
    messages=(Message("user", "What is 7 times 6?"),),
    max_output_tokens=64,
    seed=3,
    temperature=0.0,
)


def adapter(kind: str, base: str, **options: object) -> Adapter:
    provider = Provider(kind=kind, api_key_env="K")  # type: ignore[arg-type]
    return make_adapter("lane", provider, base, KEY, options=options)


async def collect(a: Adapter, request: ChatRequest = REQ) -> list[StreamEvent]:
    async with aiohttp.ClientSession() as session, a.stream(session, request) as resp:
        assert resp.status == 200
        return [ev async for ev in resp.events]


def text_of(events: list[StreamEvent]) -> tuple[str, str]:
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    content = "".join(e.text for e in events if isinstance(e, Content))
    return reasoning, content


def only(events: list[StreamEvent], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def sse(*payloads: object, done: bool = True) -> list[bytes]:
    out = [f"data: {json.dumps(p)}\n\n".encode() for p in payloads]
    return [*out, b"data: [DONE]\n\n"] if done else out


async def expect_error(a: Adapter, kind: type[ProviderError], request: ChatRequest = REQ) -> ProviderError:
    with pytest.raises(kind) as info:
        await collect(a, request)
    err = info.value
    assert KEY not in str(err)
    assert hasattr(err, "limits")
    return err


# ---------------------------------------------------------------- OpenAI Chat Completions

OPENAI_DOC = [
    {
        "id": "chatcmpl-x1",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": "gpt-4.1",
        "system_fingerprint": "fp_aa11",
        "obfuscation": "xyz",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
        "usage": None,
    },
    {
        "id": "chatcmpl-x1",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "delta": {"content": "Forty"}, "logprobs": None, "finish_reason": None}],
        "usage": None,
    },
    {
        "id": "chatcmpl-x1",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "delta": {"content": "-two"}, "logprobs": None, "finish_reason": None}],
        "usage": None,
    },
    {
        "id": "chatcmpl-x1",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
        "usage": None,
    },
    {
        "id": "chatcmpl-x1",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": "gpt-4.1",
        "choices": [],
        "usage": {
            "prompt_tokens": 1210,
            "completion_tokens": 2,
            "total_tokens": 1212,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    },
]

XAI_DOC = [
    {
        "id": "c0ffee",
        "object": "chat.completion.chunk",
        "model": "grok-3-mini",
        "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "7 times 6 is"}}],
    },
    {
        "id": "c0ffee",
        "object": "chat.completion.chunk",
        "model": "grok-3-mini",
        "choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}],
    },
    {
        "id": "c0ffee",
        "object": "chat.completion.chunk",
        "model": "grok-3-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": 15,
            "completion_tokens": 1,
            "total_tokens": 156,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 140},
            "cost_in_usd_ticks": 37756000,
        },
    },
]


async def test_openai_documented_stream_and_request(replay: Replay) -> None:
    replay.add(
        Reply(
            headers={
                "x-request-id": "req_1",
                "x-ratelimit-limit-requests": "500",
                "x-ratelimit-remaining-tokens": "29016",
                "x-ratelimit-reset-tokens": "6m0s",
            },
            chunks=sse(*OPENAI_DOC),
        )
    )
    a = adapter("openai", replay.url + "/v1")
    async with aiohttp.ClientSession() as session, a.stream(session, REQ) as resp:
        assert resp.request_id == "req_1"
        assert (resp.limits.limit_requests, resp.limits.remaining_tokens) == (500, 29016)
        assert resp.limits.reset_tokens_s == 360.0
        events = [ev async for ev in resp.events]
    assert text_of(events) == ("", "Forty-two")
    assert only(events, Finish) == [Finish("stop")]
    assert only(events, Usage) == [
        Usage(input_tokens=1210, output_tokens=2, cached_input_tokens=1024, reasoning_tokens=0)
    ]
    path, headers, body = replay.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body == {
        "model": "m-1",
        "messages": [{"role": "user", "content": "What is 7 times 6?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 64,
        "temperature": 0.0,
        "seed": 3,
    }


async def test_xai_usage_quirk_and_billed_cost(replay: Replay) -> None:
    replay.add(Reply(chunks=sse(*XAI_DOC)))
    a = adapter("xai", replay.url + "/v1")
    events = await collect(
        a,
        ChatRequest(model="grok-3-mini", messages=REQ.messages, max_output_tokens=500, reasoning_effort="low"),
    )
    assert text_of(events) == ("7 times 6 is", "42")
    # completion_tokens (1) excludes reasoning (140): normalised output includes it
    assert only(events, Usage) == [
        Usage(
            input_tokens=15,
            output_tokens=141,
            cached_input_tokens=0,
            reasoning_tokens=140,
            billed_usd=pytest.approx(0.0037756),
        )
    ]
    assert replay.last_body["reasoning_effort"] == "low"


async def test_openai_does_not_apply_the_xai_quirk(replay: Replay) -> None:
    replay.add(Reply(chunks=sse(*XAI_DOC)))
    events = await collect(adapter("deepseek", replay.url))
    usage = only(events, Usage)[0]
    assert (usage.output_tokens, usage.billed_usd) == (1, None)
    assert replay.requests[-1][0] == "/v1/chat/completions"  # a bare host gets /v1
    assert replay.last_body["max_tokens"] == 64


@pytest.mark.parametrize(
    ("kind", "field", "expect"),
    [
        ("openai_compatible", None, ("ab", "X")),  # both fields accepted, one taken per delta
        ("openrouter", None, ("b", "X")),
        ("deepseek", None, ("a", "X")),
        ("openai_compatible", "reasoning", ("b", "X")),
    ],
)
async def test_reasoning_field_variants(replay: Replay, kind: str, field: str | None, expect: tuple) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"reasoning_content": "a"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "b"}}]},
        {"choices": [{"index": 0, "delta": {"content": "X"}, "finish_reason": "length"}]},
        {"choices": None, "usage": {"prompt_tokens": 3, "completion_tokens": 9}},
    )
    replay.add(Reply(chunks=chunks))
    options = {"reasoning_field": field} if field else {}
    events = await collect(adapter(kind, replay.url, **options))
    assert text_of(events) == expect
    assert only(events, Finish) == [Finish("length")]


async def test_together_think_tags_split_anywhere(replay: Replay) -> None:
    text = "<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4. I like <think> tags."
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    chunks = sse(
        *({"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )
    replay.add(Reply(chunks=chunks))
    events = await collect(adapter("together", replay.url))
    assert text_of(events) == ("\nLet me add 2 and 2.\n", "\n\nThe answer is 4. I like <think> tags.")


async def test_openrouter_request_shape_and_cost(replay: Replay) -> None:
    replay.add(
        Reply(chunks=sse({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 20, "cost": 0.00042}}))
    )
    events = await collect(
        adapter("openrouter", replay.url),
        ChatRequest(model="openai/gpt-oss-20b", messages=REQ.messages, max_output_tokens=99, reasoning_effort="high"),
    )
    assert only(events, Usage)[0].billed_usd == pytest.approx(0.00042)
    assert replay.last_body["reasoning"] == {"effort": "high"}
    assert replay.last_body["usage"] == {"include": True}
    assert replay.last_body["max_tokens"] == 99


async def test_done_without_finish_is_truncated_and_comments_skipped(replay: Replay) -> None:
    replay.add(
        Reply(
            chunks=[
                b": ping\n\n",
                *sse({"choices": [{"index": 0, "delta": {"content": "par"}}]}),
                b": ping\r\n\r\n",
            ]
        )
    )
    events = await collect(adapter("llamacpp", replay.url))
    assert events == [Content("par"), Finish("truncated")]


async def test_cut_before_done_is_stream_broken(replay: Replay) -> None:
    replay.add(Reply(chunks=sse({"choices": [{"index": 0, "delta": {"content": "x"}}]}, done=False)))
    err = await expect_error(adapter("openai", replay.url), StreamBroken)
    assert "before [DONE]" in str(err)
    replay.add(Reply(chunks=[b'data: {"choices": [{"index": 0, "del'], cut=True))
    err = await expect_error(adapter("openai", replay.url), StreamBroken)
    assert err.retryable


async def test_malformed_chunk_is_stream_broken(replay: Replay) -> None:
    replay.add(Reply(chunks=[b"data: {not json\n\n"]))
    err = await expect_error(adapter("openai", replay.url), StreamBroken)
    assert "malformed" in str(err)


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        ({"message": "The server had an error", "type": "server_error"}, ServerError, True),
        ({"message": "Rate limit", "type": "tokens", "code": "rate_limit_exceeded"}, RateLimited, True),
        ({"message": "bad", "type": "invalid_request_error"}, FatalProviderError, False),
        ({"message": "upstream", "code": 502}, ServerError, True),
        ("plain string error", ServerError, True),
    ],
)
async def test_error_inside_the_stream(replay: Replay, error: object, kind: type, retryable: bool) -> None:
    replay.add(Reply(chunks=sse({"choices": [{"index": 0, "delta": {"content": "x"}}]}, {"error": error})))
    err = await expect_error(adapter("openai", replay.url), kind)
    assert err.retryable is retryable


def _body(message: str, type_: str, code: str | None = None) -> list[bytes]:
    return [json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()]


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "retryable", "retry_after"),
    [
        (
            429,
            {"retry-after": "2", "x-ratelimit-remaining-tokens": "0"},
            _body("Rate limit reached for gpt-4.1", "tokens", "rate_limit_exceeded"),
            RateLimited,
            True,
            2.0,
        ),
        (
            429,
            {},
            _body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
            FatalProviderError,
            False,
            None,
        ),
        (
            429,
            {"retry-after-ms": "250", "retry-after": "9"},
            _body("slow", "requests"),
            RateLimited,
            True,
            0.25,
        ),
        (429, {"x-should-retry": "false"}, _body("no", "requests"), RateLimited, False, None),
        (500, {}, _body("boom", "server_error"), ServerError, True, None),
        (503, {"retry-after": "Thu, 01 Jan 2099 00:00:00 GMT"}, [b"Slow Down"], ServerError, True, "big"),
        (408, {}, [b""], ServerError, True, None),
        (409, {}, _body("conflict", "conflict"), ServerError, True, None),
        (
            400,
            {},
            _body("max_tokens is not supported", "invalid_request_error"),
            FatalProviderError,
            False,
            None,
        ),
        (
            401,
            {},
            _body(f"Incorrect API key provided: {KEY}", "invalid_request_error", "invalid_api_key"),
            FatalProviderError,
            False,
            None,
        ),
        (
            404,
            {"x-should-retry": "true"},
            _body("no model", "invalid_request_error"),
            FatalProviderError,
            True,
            None,
        ),
        (422, {}, [b'{"detail": [{"msg": "field required"}]}'], FatalProviderError, False, None),
    ],
)
async def test_http_errors_classified(
    replay: Replay,
    status: int,
    headers: dict[str, str],
    body: list[bytes],
    kind: type,
    retryable: bool,
    retry_after: object,
) -> None:
    replay.add(Reply(status=status, headers=headers, chunks=body))
    err = await expect_error(adapter("openai", replay.url), kind)
    assert err.status == status
    assert err.retryable is retryable
    assert str(status) in str(err)
    if retry_after == "big":
        assert err.retry_after_s is not None and err.retry_after_s > 1e6
    else:
        assert err.retry_after_s == retry_after
    if status == 429 and "x-ratelimit-remaining-tokens" in headers:
        assert err.limits.remaining_tokens == 0  # type: ignore[attr-defined]


async def test_connection_refused_is_retryable_and_typed() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    # retryable in itself: the lane decides (it stops if the host never answered, see test_lane_stops)
    err = await expect_error(adapter("openai", f"http://127.0.0.1:{port}"), EndpointUnreachable)
    assert err.retryable and err.error_class == "unreachable"
    assert not isinstance(err, aiohttp.ClientError)
    assert err.__class__.__module__ == "runner.errors"


async def test_leaving_early_closes_the_stream(replay: Replay) -> None:
    many = sse(*({"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]} for i in range(200)))
    replay.add(Reply(chunks=many))
    a = adapter("openai", replay.url)
    async with aiohttp.ClientSession() as session:
        async with a.stream(session, REQ) as resp:
            first = await anext(resp.events)
        assert first == Content("t0 ")
        replay.add(Reply(chunks=sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})))
        async with a.stream(session, REQ) as resp:  # the session is still usable
            assert [e async for e in resp.events] == [Finish("stop")]


# ---------------------------------------------------------------- Anthropic Messages


def anthropic_sse(*events: dict[str, object]) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


ANTHROPIC_DOC = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 42,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2048,
                "output_tokens": 3,
            },
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {"type": "ping"},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Check small "},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "divisors first."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "c2lnLWRlbW8="},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "Yes, it is a Mersenne prime."},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 611},
    },
    {"type": "message_stop"},
]
ANTHROPIC_HEADERS = {
    "request-id": "req_abc",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-limit": "38000",
    "anthropic-ratelimit-tokens-remaining": "37000",
}


async def test_anthropic_documented_stream(replay: Replay) -> None:
    replay.add(Reply(headers=ANTHROPIC_HEADERS, chunks=anthropic_sse(*ANTHROPIC_DOC)))
    a = adapter("anthropic", replay.url)
    request = ChatRequest(
        model="claude-sonnet-4-20250514",
        max_output_tokens=16000,
        reasoning_budget=10000,
        temperature=0.5,
        messages=(Message("system", "Be brief."), Message("user", "Is 2^31-1 prime?")),
    )
    async with aiohttp.ClientSession() as session, a.stream(session, request) as resp:
        assert resp.request_id == "req_abc"
        assert (resp.limits.limit_requests, resp.limits.remaining_tokens) == (50, 37000)
        events = [e async for e in resp.events]
    assert text_of(events) == ("Check small divisors first.", "Yes, it is a Mersenne prime.")
    assert only(events, Finish) == [Finish("stop")]
    # input normalised to include cache reads and writes; output is message_delta's cumulative count
    assert only(events, Usage) == [
        Usage(input_tokens=2190, output_tokens=611, cached_input_tokens=2048, cache_write_input_tokens=100)
    ]
    path, headers, body = replay.requests[-1]
    assert path == "/v1/messages"
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers
    assert body == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 16000,
        "stream": True,
        "messages": [{"role": "user", "content": "Is 2^31-1 prime?"}],
        "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 10000},
    }


async def test_anthropic_max_tokens_is_length(replay: Replay) -> None:
    events = [
        *ANTHROPIC_DOC[:4],
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 64}},
        {"type": "message_stop"},
    ]
    replay.add(Reply(chunks=anthropic_sse(*events)))
    got = await collect(adapter("anthropic", replay.url + "/v1"))
    assert only(got, Finish) == [Finish("length")]
    assert only(got, Usage)[0].output_tokens == 64
    assert replay.requests[-1][0] == "/v1/messages"
    assert replay.last_body["temperature"] == 0.0  # no thinking: temperature passes


async def test_anthropic_overloaded_inside_the_stream(replay: Replay) -> None:
    events = [
        *ANTHROPIC_DOC[:4],
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    replay.add(Reply(chunks=anthropic_sse(*events)))
    err = await expect_error(adapter("anthropic", replay.url), ServerError)
    assert err.retryable and "overloaded_error" in str(err)


@pytest.mark.parametrize(
    ("status", "type_", "kind", "retryable"),
    [
        (529, "overloaded_error", ServerError, True),
        (429, "rate_limit_error", RateLimited, True),
        (400, "invalid_request_error", FatalProviderError, False),
        (402, "billing_error", FatalProviderError, False),
        (500, "api_error", ServerError, True),
        (413, "request_too_large", FatalProviderError, False),
    ],
)
async def test_anthropic_http_errors(replay: Replay, status: int, type_: str, kind: type, retryable: bool) -> None:
    body = json.dumps({"type": "error", "error": {"type": type_, "message": "nope"}, "request_id": "req_1"})
    replay.add(Reply(status=status, headers={"retry-after": "7", **ANTHROPIC_HEADERS}, chunks=[body.encode()]))
    err = await expect_error(adapter("anthropic", replay.url), kind)
    assert (err.status, err.retryable, err.retry_after_s) == (status, retryable, 7.0)
    assert err.limits.limit_requests == 50  # type: ignore[attr-defined]
    assert type_ in str(err)


async def test_anthropic_cut_before_message_stop(replay: Replay) -> None:
    replay.add(Reply(chunks=anthropic_sse(*ANTHROPIC_DOC[:5])))
    err = await expect_error(adapter("anthropic", replay.url), StreamBroken)
    assert "message_stop" in str(err)


# ---------------------------------------------------------------- OpenAI Responses


def responses_sse(*events: dict[str, object]) -> list[bytes]:
    return [
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n".encode()
        for i, e in enumerate(events)
    ]


RESPONSES_USAGE = {
    "input_tokens": 80,
    "input_tokens_details": {"cached_tokens": 64},
    "output_tokens": 2000,
    "output_tokens_details": {"reasoning_tokens": 1994},
    "total_tokens": 2080,
}
RESPONSES_DOC = [
    {"type": "response.created", "response": {"id": "resp_9", "status": "in_progress", "usage": None}},
    {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_01"}},
    {
        "type": "response.reasoning_summary_text.delta",
        "item_id": "rs_01",
        "output_index": 0,
        "summary_index": 0,
        "delta": "Checking the parity",
    },
    {
        "type": "response.reasoning_text.delta",
        "item_id": "rs_01",
        "output_index": 0,
        "content_index": 0,
        "delta": " of 10.",
    },
    {
        "type": "response.output_text.delta",
        "item_id": "msg_02",
        "output_index": 1,
        "content_index": 0,
        "delta": "It is even.",
        "logprobs": [],
    },
    {
        "type": "response.incomplete",
        "response": {
            "id": "resp_9",
            "object": "response",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [],
            "usage": RESPONSES_USAGE,
        },
    },
]


async def test_responses_documented_stream(replay: Replay) -> None:
    replay.add(Reply(headers={"x-ratelimit-limit-tokens": "30000"}, chunks=responses_sse(*RESPONSES_DOC)))
    events = await collect(
        adapter("openai_responses", replay.url + "/v1"),
        ChatRequest(model="o4-mini", messages=REQ.messages, max_output_tokens=2000, reasoning_effort="low"),
    )
    assert text_of(events) == ("Checking the parity of 10.", "It is even.")
    assert only(events, Finish) == [Finish("length")]
    assert only(events, Usage) == [
        Usage(input_tokens=80, output_tokens=2000, cached_input_tokens=64, reasoning_tokens=1994)
    ]
    path, _headers, body = replay.requests[-1]
    assert path == "/v1/responses"
    assert body["reasoning"] == {"summary": "auto", "effort": "low"}
    assert body["max_output_tokens"] == 2000 and body["stream"] is True


async def test_responses_completed_and_failed(replay: Replay) -> None:
    done = {
        "type": "response.completed",
        "response": {"status": "completed", "incomplete_details": None, "usage": RESPONSES_USAGE},
    }
    replay.add(Reply(chunks=responses_sse(RESPONSES_DOC[4], done)))
    events = await collect(adapter("openai_responses", replay.url))
    assert only(events, Finish) == [Finish("stop")]
    assert "reasoning" not in replay.last_body
    failed = {
        "type": "response.failed",
        "response": {"status": "failed", "error": {"code": "server_error", "message": "oops"}},
    }
    replay.add(Reply(chunks=responses_sse(RESPONSES_DOC[4], failed)))
    await expect_error(adapter("openai_responses", replay.url), ServerError)
    replay.add(Reply(chunks=responses_sse({"type": "error", "code": "rate_limit_exceeded", "message": "slow"})))
    await expect_error(adapter("openai_responses", replay.url), RateLimited)
    replay.add(Reply(chunks=responses_sse(*RESPONSES_DOC[:3])))
    await expect_error(adapter("openai_responses", replay.url), StreamBroken)


# ---------------------------------------------------------------- Gemini

GEMINI_DOC = [
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "Comparing decimals digit by digit.", "thought": True}],
                }
            }
        ],
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "9.9 is larger."}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 188,
            "totalTokenCount": 205,
        },
        "modelVersion": "gemini-2.5-flash",
    },
]


async def test_gemini_documented_stream(replay: Replay) -> None:
    replay.add(Reply(chunks=sse(*GEMINI_DOC, done=False)))
    request = ChatRequest(
        model="gemini-2.5-flash",
        max_output_tokens=300,
        reasoning_budget=256,
        seed=1,
        messages=(Message("system", "Short."), Message("user", "9.11 or 9.9?")),
    )
    events = await collect(adapter("gemini", replay.url), request)
    assert text_of(events) == ("Comparing decimals digit by digit.", "9.9 is larger.")
    assert only(events, Finish) == [Finish("stop")]
    assert only(events, Usage) == [Usage(input_tokens=12, output_tokens=193, reasoning_tokens=188)]
    path, headers, body = replay.requests[-1]
    assert path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert headers["x-goog-api-key"] == KEY
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "9.11 or 9.9?"}]}],
        "generationConfig": {
            "maxOutputTokens": 300,
            "seed": 1,
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 256},
        },
        "systemInstruction": {"parts": [{"text": "Short."}]},
    }


async def test_gemini_max_tokens_errors_and_cuts(replay: Replay) -> None:
    last = json.loads(json.dumps(GEMINI_DOC[1]))
    last["candidates"][0]["finishReason"] = "MAX_TOKENS"
    replay.add(Reply(chunks=sse(GEMINI_DOC[0], last, done=False)))
    assert only(await collect(adapter("gemini", replay.url + "/v1beta")), Finish) == [Finish("length")]
    replay.add(Reply(chunks=sse(GEMINI_DOC[0], done=False)))
    await expect_error(adapter("gemini", replay.url), StreamBroken)
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    quota = {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []}
    error = {
        "code": 429,
        "message": "Resource exhausted",
        "status": "RESOURCE_EXHAUSTED",
        "details": [quota, retry_info],
    }
    body = json.dumps({"error": error})
    replay.add(Reply(status=429, chunks=[body.encode()]))
    err = await expect_error(adapter("gemini", replay.url), RateLimited)
    assert "RESOURCE_EXHAUSTED" in str(err)
    assert err.retry_after_s == 37.0  # from the body's RetryInfo: Gemini sends no retry header
    replay.add(
        Reply(chunks=sse(GEMINI_DOC[0], {"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}, done=False))
    )
    await expect_error(adapter("gemini", replay.url), ServerError)


async def test_usage_restated_in_every_chunk_is_reported_once(replay: Replay) -> None:
    chunks = sse(
        {
            "choices": [{"index": 0, "delta": {"content": "a"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        },
        {
            "choices": [{"index": 0, "delta": {"content": "b"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
    )
    replay.add(Reply(chunks=chunks))
    events = await collect(adapter("openai_compatible", replay.url))
    assert events[-2:] == [Finish("stop"), Usage(input_tokens=5, output_tokens=3)]
    assert len(only(events, Usage)) == 1


async def test_invalid_base_url_is_fatal() -> None:
    err = await expect_error(adapter("openai", "not-a-url"), ConfigurationRejected)
    assert "invalid base URL" in str(err) and not err.retryable


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("kind", "protocol", "base"),
    [
        ("sim", "openai_chat", None),
        ("openai", "openai_chat", "https://api.openai.com/v1"),
        ("xai", "openai_chat", "https://api.x.ai/v1"),
        ("deepseek", "openai_chat", "https://api.deepseek.com/v1"),
        ("openai_compatible", "openai_chat", None),
        ("openrouter", "openai_chat", "https://openrouter.ai/api/v1"),
        ("together", "openai_chat", "https://api.together.xyz/v1"),
        ("llamacpp", "openai_chat", "http://127.0.0.1:8080/v1"),
        ("openai_responses", "openai_responses", "https://api.openai.com/v1"),
        ("anthropic", "anthropic", "https://api.anthropic.com/v1"),
        ("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta"),
    ],
)
def test_registry_kinds(kind: str, protocol: str, base: str | None) -> None:
    from runner.providers.registry import default_base_url

    assert default_base_url(kind) == base
    a = adapter(kind, base or "http://127.0.0.1:1")
    assert a.protocol == protocol
    assert a.provider == "lane"


def test_registry_options_and_errors() -> None:
    from runner.errors import ConfigError
    from runner.providers.openai_chat import OpenAIChatAdapter
    from runner.providers.registry import default_base_url

    xai = adapter("xai", "http://h")
    assert isinstance(xai, OpenAIChatAdapter)
    assert (xai.reasoning_field, xai.usage_quirk, xai.cost_field) == ("reasoning_content", "xai", True)
    manifest_field = make_adapter(
        "vllm", Provider(kind="openai_compatible", reasoning_field="reasoning"), "http://h", None
    )
    assert isinstance(manifest_field, OpenAIChatAdapter) and manifest_field.reasoning_field == "reasoning"
    with pytest.raises(ConfigError, match="unknown provider kind 'nope'"):
        default_base_url("nope")
    with pytest.raises(ValueError, match="usage_quirk"):
        adapter("openai", "http://h", usage_quirk="weird")


async def test_json_body_with_status_200_instead_of_a_stream(replay: Replay) -> None:
    error = b'{"error": {"message": "upstream overloaded", "type": "server_error"}}'
    replay.add(Reply(headers={"content-type": "application/json"}, chunks=[error]))
    err = await expect_error(adapter("openrouter", replay.url), ServerError)
    assert "upstream overloaded" in str(err)
    replay.add(Reply(headers={"content-type": "application/json"}, chunks=[b'{"choices": []}']))
    err = await expect_error(adapter("openrouter", replay.url), StreamBroken)
    assert "expected an event stream" in str(err)


async def test_usage_before_a_cut_is_still_reported(replay: Replay) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
        done=False,
    )
    replay.add(Reply(chunks=chunks, cut=True))
    seen: list[StreamEvent] = []
    a = adapter("openai", replay.url)
    with pytest.raises(StreamBroken):
        async with aiohttp.ClientSession() as session, a.stream(session, REQ) as resp:
            async for e in resp.events:
                seen.append(e)
    assert seen == [Finish("stop"), Usage(input_tokens=5, output_tokens=3)]


async def test_empty_200_stream_is_broken_and_final(replay: Replay) -> None:
    replay.add(Reply(chunks=[]))  # llama-cpp-python's answer to a prompt longer than its context
    err = await expect_error(adapter("llamacpp", replay.url), StreamBroken)
    assert "empty stream" in str(err) and not err.retryable
