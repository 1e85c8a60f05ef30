"""Anthropic Messages streaming with extended thinking (providers.md §4).

``thinking_delta`` → `Reasoning`, ``text_delta`` → `Content`; ``signature_delta``, ``ping`` and
block boundaries carry nothing we count. Usage arrives in two halves: input and cache figures
in ``message_start`` (a `PromptUsage`: a stream cut at its budget still prices its prompt
exactly), the cumulative ``output_tokens`` in ``message_delta``. Anthropic's ``input_tokens``
excludes cache reads and writes, so the normalised input adds both back (``cached_input_tokens``
= reads, ``cache_write_input_tokens`` = writes).

Anthropic caches a prompt only up to ``cache_control`` breakpoints: the request's cache points
(prefixes other requests share) become breakpoints, see `breakpoints`.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from runner.errors import ProviderError
from runner.providers.classify import ErrorDetail, classify_stream_error
from runner.providers.counts import Tokens
from runner.providers.headers import anthropic_limits
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.streaming import SSEAdapter, StreamDecoder
from runner.types import (
    ChatRequest,
    Content,
    Finish,
    PromptUsage,
    RateLimitReading,
    Reasoning,
    StreamEvent,
    Usage,
)

API_VERSION = "2023-06-01"
MAX_BREAKPOINTS = 4  # cache_control blocks a request may carry

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


class _Usage(msgspec.Struct, gc=False):
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cache_creation_input_tokens: Tokens | None = None
    cache_read_input_tokens: Tokens | None = None


class _Message(msgspec.Struct, gc=False):
    usage: _Usage | None = None


class _Delta(msgspec.Struct, gc=False):
    type: str | None = None
    thinking: str | None = None
    text: str | None = None
    stop_reason: str | None = None


class _Block(msgspec.Struct, gc=False):
    type: str = ""
    thinking: str | None = None
    text: str | None = None


class _Event(msgspec.Struct, gc=False):  # decoded data holds no cycles: none is tracked
    type: str = ""
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: ErrorDetail | None = None


_decoder = msgspec.json.Decoder(_Event)


class _WholeMessage(msgspec.Struct):
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: _Usage | None = None


_message_decoder = msgspec.json.Decoder(_WholeMessage)


class _UsageSoFar:
    """message_start's figures, overwritten by any that message_delta restates."""

    __slots__ = ("cache_read", "cache_write", "input", "output")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = 0

    def update(self, u: _Usage | None) -> None:
        """Take the figures ``u`` states; an event without usage (None) changes nothing."""
        if u is None:
            return
        if u.input_tokens is not None:
            self.input = u.input_tokens
        if u.output_tokens is not None:
            self.output = u.output_tokens  # cumulative, never a delta
        if u.cache_read_input_tokens is not None:
            self.cache_read = u.cache_read_input_tokens
        if u.cache_creation_input_tokens is not None:
            self.cache_write = u.cache_creation_input_tokens

    def prompt_usage(self) -> PromptUsage:
        return PromptUsage(
            input_tokens=self.input + self.cache_read + self.cache_write,
            cached_input_tokens=self.cache_read,
            cache_write_input_tokens=self.cache_write,
        )

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input + self.cache_read + self.cache_write,
            output_tokens=self.output,
            cached_input_tokens=self.cache_read,
            cache_write_input_tokens=self.cache_write,
        )


def _opening_text(block: _Block) -> Reasoning | Content | None:
    """The text a content block starts with: normally none, but a non-empty start text still counts."""
    if block.type == "thinking" and block.thinking:
        return Reasoning(block.thinking)
    if block.type == "text" and block.text:
        return Content(block.text)
    return None


def breakpoints(request: ChatRequest) -> dict[int, tuple[int, ...]]:
    """Where to put ``cache_control`` breakpoints: per message, character offsets.

    Every cache point of the request is a prefix another request shares, so a breakpoint there
    lowers the bill: writing it costs 1.25x input once, and each read costs 0.1x instead of 1x;
    a breakpoint on a prefix already cached only reads. The API takes at most four: the last
    four (the longest prefixes) are kept; the cache looks back 20 blocks from each for shorter
    prefixes written earlier.
    """
    marks: dict[int, list[int]] = {}
    for point in request.cache_points[-MAX_BREAKPOINTS:]:
        text = request.messages[point.message].content if point.message < len(request.messages) else ""
        if 0 < point.offset <= len(text):
            marks.setdefault(point.message, []).append(point.offset)
    return {i: tuple(sorted(set(offsets))) for i, offsets in marks.items()}


def _content(text: str, marks: tuple[int, ...]) -> str | list[dict[str, object]]:
    """A turn's content: plain text, or text blocks cut at the breakpoints (the last marked one
    and the text after it are separate blocks, so the cached prefix ends exactly there)."""
    if not marks:
        return text
    blocks: list[dict[str, object]] = []
    start = 0
    for end in marks:
        blocks.append({"type": "text", "text": text[start:end], "cache_control": {"type": "ephemeral"}})
        start = end
    if start < len(text):
        blocks.append({"type": "text", "text": text[start:]})
    return blocks


def map_usage(payload: bytes | str) -> Usage:
    """Map one Anthropic usage JSON object (e.g. a non-streamed response's) to `Usage`."""
    so_far = _UsageSoFar()
    so_far.update(msgspec.json.decode(payload, type=_Usage))
    return so_far.usage()


class AnthropicAdapter(SSEAdapter):
    """``POST {base_url}/messages`` (``/v1`` added when the base URL lacks it).

    ``ChatRequest.reasoning_budget`` turns extended thinking on (``budget_tokens``); with it on,
    ``temperature`` is left out, as the API accepts only the default then.
    """

    protocol = "anthropic"

    def url(self, request: ChatRequest) -> str:
        base = self.base_url if self.base_url.endswith("/v1") else f"{self.base_url}/v1"
        return f"{base}/messages"

    def headers(self) -> dict[str, str]:
        h = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "anthropic-version": API_VERSION,
        }
        if self._api_key:
            h["x-api-key"] = self._api_key
        beta = self.options.get("beta")
        if beta:
            h["anthropic-beta"] = str(beta)
        return h

    def payload(self, request: ChatRequest) -> dict[str, object]:
        marks = breakpoints(request)
        systems = [i for i, m in enumerate(request.messages) if m.role == "system"]
        body: dict[str, object] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens,
            "stream": True,
            "messages": [
                {"role": m.role, "content": _content(m.content, marks.get(i, ()))}
                for i, m in enumerate(request.messages)
                if m.role != "system"
            ],
        }
        if len(systems) == 1:
            body["system"] = _content(request.messages[systems[0]].content, marks.get(systems[0], ()))
        elif systems:
            body["system"] = "\n\n".join(request.messages[i].content for i in systems)
        if request.reasoning_budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": request.reasoning_budget}
        elif request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def read_limits(self, headers: Mapping[str, str]) -> RateLimitReading:
        return anthropic_limits(headers)

    def decode_unstreamed(self, data: bytes) -> list[StreamEvent]:
        """A whole Message as the events its stream would have given (thinking, text, stop, usage)."""
        try:
            message = _message_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.broken_body(data, exc) from None
        out: list[StreamEvent] = [text for block in message.content if (text := _opening_text(block)) is not None]
        stop = message.stop_reason
        out.append(Finish(STOP_REASONS.get(stop, "other") if stop else "truncated"))
        so_far = _UsageSoFar()
        so_far.update(message.usage)
        out.append(so_far.usage())
        return out

    def decoder(self, parser: SSEParser, limits: RateLimitReading) -> StreamDecoder:
        return _MessagesDecoder(self, parser, limits)


class _MessagesDecoder(StreamDecoder):
    """One Messages stream: the usage so far, and the decoding of each event."""

    __slots__ = ("adapter", "limits", "parser", "so_far")

    def __init__(self, adapter: AnthropicAdapter, parser: SSEParser, limits: RateLimitReading) -> None:
        self.adapter = adapter
        self.parser = parser
        self.limits = limits
        self.so_far = _UsageSoFar()

    def feed(self, event: SSEEvent, out: list[StreamEvent]) -> bool:
        try:
            msg = _decoder.decode(event.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.adapter.malformed(self.limits, event.data, exc) from None
        kind = msg.type or event.event
        if kind == "content_block_delta" and msg.delta is not None:
            d = msg.delta
            if d.type == "thinking_delta" and d.thinking:
                out.append(Reasoning(d.thinking))
            elif d.type == "text_delta" and d.text:
                out.append(Content(d.text))
        elif kind == "content_block_start" and msg.content_block is not None:
            opening = _opening_text(msg.content_block)
            if opening is not None:
                out.append(opening)
        elif kind == "message_start" and msg.message is not None:
            self.so_far.update(msg.message.usage)
            out.append(self.so_far.prompt_usage())  # prices the prompt even if the stream is cut
        elif kind == "message_delta":
            self.so_far.update(msg.usage)
            stop = msg.delta.stop_reason if msg.delta is not None else None
            out.append(Finish(STOP_REASONS.get(stop, "other") if stop else "truncated"))
            out.append(self.so_far.usage())
        elif kind == "message_stop":
            return True
        elif kind == "error":
            err = msg.error or ErrorDetail()
            a = self.adapter
            raise classify_stream_error(a.provider, err.type, err.message or "", self.limits, secret=a._api_key)
        return False

    def ended(self, out: list[StreamEvent]) -> ProviderError:
        return self.adapter.ended_early(self.parser, self.limits, "message_stop")
