"""OpenAI Responses API streaming (providers.md §2).

Reasoning arrives as summary deltas (``response.reasoning_summary_text.delta``, o-series) or raw
reasoning deltas (``response.reasoning_text.delta``, gpt-oss hosts); the answer as
``response.output_text.delta``. The stream ends with a terminal event carrying usage:
``response.completed`` (stop), ``response.incomplete`` (``max_output_tokens`` → length) or
``response.failed`` (an error). There is no ``[DONE]``; one is tolerated.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from runner.errors import ProviderError
from runner.providers.classify import classify_stream_error
from runner.providers.counts import TICKS_PER_USD, Ticks, Tokens
from runner.providers.headers import openai_limits
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.streaming import SSEAdapter, StreamDecoder, bearer_headers, versioned
from runner.types import ChatRequest, Content, Finish, RateLimitReading, Reasoning, StreamEvent, Usage

_REASONING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class _InputDetails(msgspec.Struct, gc=False):
    cached_tokens: Tokens | None = None


class _OutputDetails(msgspec.Struct, gc=False):
    reasoning_tokens: Tokens | None = None


class _Usage(msgspec.Struct, gc=False):
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None
    cost_in_usd_ticks: Ticks | None = None  # xAI serves this API too


class _Incomplete(msgspec.Struct, gc=False):
    reason: str | None = None


class _Error(msgspec.Struct, gc=False):
    code: str | None = None
    message: str | None = None


class _Response(msgspec.Struct, gc=False):
    status: str | None = None
    usage: _Usage | None = None
    incomplete_details: _Incomplete | None = None
    error: _Error | None = None


class _Event(msgspec.Struct, gc=False):  # decoded data holds no cycles: none is tracked
    type: str = ""
    delta: str | None = None
    response: _Response | None = None
    code: str | None = None
    message: str | None = None


_decoder = msgspec.json.Decoder(_Event)


class _Text(msgspec.Struct):
    type: str = ""
    text: str = ""


class _Item(msgspec.Struct):
    type: str = ""
    summary: list[_Text] = []
    content: list[_Text] = []


class _WholeResponse(_Response):
    output: list[_Item] = []


_response_decoder = msgspec.json.Decoder(_WholeResponse)


def map_usage(u: _Usage, *, cost_field: bool = False) -> Usage:
    """Responses usage already counts reasoning inside ``output_tokens``."""
    return Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cached_input_tokens=(u.input_tokens_details.cached_tokens or 0) if u.input_tokens_details else 0,
        reasoning_tokens=u.output_tokens_details.reasoning_tokens if u.output_tokens_details else None,
        billed_usd=u.cost_in_usd_ticks / TICKS_PER_USD if cost_field and u.cost_in_usd_ticks is not None else None,
    )


def decode_usage(payload: bytes | str, *, cost_field: bool = False) -> Usage:
    """Map a JSON Responses usage object to `Usage` (tests and tools)."""
    return map_usage(msgspec.json.decode(payload, type=_Usage), cost_field=cost_field)


def _finish(kind: str, resp: _Response) -> Finish:
    """How a terminal event ends generation: ``response.completed`` stops, an incomplete one says why."""
    if kind == "response.completed":
        return Finish("stop")
    reason = resp.incomplete_details.reason if resp.incomplete_details else None
    return Finish(INCOMPLETE_REASONS.get(reason or "", "other"))


class OpenAIResponsesAdapter(SSEAdapter):
    """``POST {base_url}/responses``.

    Options: ``reasoning_summary`` (``auto`` | ``concise`` | ``detailed``; sent with the effort,
    default ``auto``), ``cost_field`` (bool, xAI's billed cost), ``store`` (default False).
    """

    protocol = "openai_responses"

    def url(self, request: ChatRequest) -> str:
        return f"{versioned(self.base_url)}/responses"

    def headers(self) -> dict[str, str]:
        return bearer_headers(self._api_key)

    def payload(self, request: ChatRequest) -> dict[str, object]:
        body: dict[str, object] = {
            "model": request.model,
            "input": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "max_output_tokens": request.max_output_tokens,
            "store": bool(self.options.get("store", False)),
        }
        summary = self.options.get("reasoning_summary")
        # non-reasoning models reject a `reasoning` object, so send one only when asked for
        if request.reasoning_effort is not None or summary:
            reasoning: dict[str, object] = {"summary": summary or "auto"}
            if request.reasoning_effort is not None:
                reasoning["effort"] = request.reasoning_effort
            body["reasoning"] = reasoning
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def read_limits(self, headers: Mapping[str, str]) -> RateLimitReading:
        return openai_limits(headers)

    def decode_unstreamed(self, data: bytes) -> list[StreamEvent]:
        """A whole Response object as the events its stream would have given."""
        try:
            resp = _response_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.broken_body(data, exc) from None
        out: list[StreamEvent] = []
        for item in resp.output:
            if item.type == "reasoning":
                text = "".join(t.text for t in [*item.summary, *item.content])
                if text:
                    out.append(Reasoning(text))
            elif item.type == "message":
                text = "".join(t.text for t in item.content if t.type == "output_text")
                if text:
                    out.append(Content(text))
        out.append(_finish("response.completed" if resp.status == "completed" else "response.incomplete", resp))
        if resp.usage is not None:
            out.append(map_usage(resp.usage, cost_field=bool(self.options.get("cost_field", False))))
        return out

    def decoder(self, parser: SSEParser, limits: RateLimitReading) -> StreamDecoder:
        return _ResponsesDecoder(self, parser, limits)


class _ResponsesDecoder(StreamDecoder):
    """One Responses stream: each event decoded on its own (the terminal one carries the usage)."""

    __slots__ = ("adapter", "cost_field", "limits", "parser")

    def __init__(self, adapter: OpenAIResponsesAdapter, parser: SSEParser, limits: RateLimitReading) -> None:
        self.adapter = adapter
        self.parser = parser
        self.limits = limits
        self.cost_field = bool(adapter.options.get("cost_field", False))

    def feed(self, event: SSEEvent, out: list[StreamEvent]) -> bool:
        if event.data[:6] == b"[DONE]":
            out.append(Finish("truncated"))
            return True
        try:
            msg = _decoder.decode(event.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.adapter.malformed(self.limits, event.data, exc) from None
        kind = msg.type or event.event
        if kind == "response.output_text.delta":
            if msg.delta:
                out.append(Content(msg.delta))
        elif kind in _REASONING_DELTAS:
            if msg.delta:
                out.append(Reasoning(msg.delta))
        elif kind in ("response.completed", "response.incomplete"):
            resp = msg.response or _Response()
            out.append(_finish(kind, resp))
            if resp.usage is not None:
                out.append(map_usage(resp.usage, cost_field=self.cost_field))
            return True
        elif kind == "response.failed":
            err = (msg.response.error if msg.response else None) or _Error()
            raise self._error(err.code, err.message or "response failed")
        elif kind == "error":
            raise self._error(msg.code, msg.message or "")
        return False

    def _error(self, code: str | None, message: str) -> ProviderError:
        a = self.adapter
        return classify_stream_error(a.provider, code, message, self.limits, secret=a._api_key)

    def ended(self, out: list[StreamEvent]) -> ProviderError:
        return self.adapter.ended_early(self.parser, self.limits, "the terminal response event")
