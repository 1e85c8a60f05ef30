"""Gemini ``streamGenerateContent?alt=sse`` with thought parts (providers.md §5).

Each event is a whole ``GenerateContentResponse``: parts with ``"thought": true`` are
`Reasoning`, other text parts `Content`. There is no terminal sentinel: the stream ends after
the event carrying ``finishReason``, so a body that ends before one is a broken stream.
``candidatesTokenCount`` leaves thinking out; the normalised output adds ``thoughtsTokenCount``.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from runner.errors import ProviderError
from runner.providers.classify import ErrorDetail, classify_stream_error
from runner.providers.counts import Tokens
from runner.providers.headers import openai_limits
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.streaming import SSEAdapter, StreamDecoder
from runner.types import ChatRequest, Content, Finish, RateLimitReading, Reasoning, StreamEvent, Usage

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


class _Part(msgspec.Struct, gc=False):
    text: str | None = None
    thought: bool = False


class _Content(msgspec.Struct, gc=False):
    parts: tuple[_Part, ...] | None = None


class _Candidate(msgspec.Struct, gc=False):
    content: _Content | None = None
    finishReason: str | None = None


class _UsageMeta(msgspec.Struct, gc=False):
    promptTokenCount: Tokens = 0
    candidatesTokenCount: Tokens = 0
    thoughtsTokenCount: Tokens | None = None
    cachedContentTokenCount: Tokens = 0


class _Feedback(msgspec.Struct, gc=False):
    blockReason: str | None = None


class _Chunk(msgspec.Struct, gc=False):  # decoded data holds no cycles: none is tracked
    candidates: tuple[_Candidate, ...] | None = None
    usageMetadata: _UsageMeta | None = None
    promptFeedback: _Feedback | None = None
    error: ErrorDetail | None = None


_decoder = msgspec.json.Decoder(_Chunk)


def map_usage(u: _UsageMeta) -> Usage:
    """Gemini usage, thoughts added to output (they are billed at the output price)."""
    thoughts = u.thoughtsTokenCount
    return Usage(
        input_tokens=u.promptTokenCount,
        output_tokens=u.candidatesTokenCount + (thoughts or 0),
        cached_input_tokens=u.cachedContentTokenCount,
        reasoning_tokens=thoughts,
    )


def decode_usage(payload: bytes | str) -> Usage:
    """Map a JSON ``usageMetadata`` object to `Usage` (tests and tools)."""
    return map_usage(msgspec.json.decode(payload, type=_UsageMeta))


class GeminiAdapter(SSEAdapter):
    """``POST {base_url}/models/{model}:streamGenerateContent?alt=sse`` (``/v1beta`` added if absent).

    ``ChatRequest.reasoning_budget`` becomes ``thinkingBudget``. Option ``include_thoughts``
    (default True) asks for thought summaries; set it False for models without thinking.
    """

    protocol = "gemini"

    def url(self, request: ChatRequest) -> str:
        base = self.base_url
        if not base.rsplit("/", 1)[-1].startswith("v1"):
            base = f"{base}/v1beta"
        return f"{base}/models/{request.model}:streamGenerateContent?alt=sse"

    def headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "text/event-stream"}
        if self._api_key:
            h["x-goog-api-key"] = self._api_key
        return h

    def payload(self, request: ChatRequest) -> dict[str, object]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents = [
            {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
            for m in request.messages
            if m.role != "system"
        ]
        config: dict[str, object] = {"maxOutputTokens": request.max_output_tokens}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.seed is not None:
            config["seed"] = request.seed
        thinking: dict[str, object] = {}
        if self.options.get("include_thoughts", True):
            thinking["includeThoughts"] = True
        if request.reasoning_budget is not None:
            thinking["thinkingBudget"] = request.reasoning_budget
        if thinking:
            config["thinkingConfig"] = thinking
        body: dict[str, object] = {"contents": contents, "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        return body

    def read_limits(self, headers: Mapping[str, str]) -> RateLimitReading:
        return openai_limits(headers)  # Gemini states no limits in headers; retry-after only

    def decode_unstreamed(self, data: bytes) -> list[StreamEvent]:
        """A whole ``GenerateContentResponse`` as the events its stream would have given."""
        try:
            chunk = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.broken_body(data, exc) from None
        out: list[StreamEvent] = []
        finish = "truncated"
        for cand in (chunk.candidates or ())[:1]:
            for part in (cand.content.parts or ()) if cand.content else ():
                if part.text:
                    out.append(Reasoning(part.text) if part.thought else Content(part.text))
            if cand.finishReason:
                finish = FINISH_REASONS.get(cand.finishReason, "other")
        if chunk.promptFeedback is not None and chunk.promptFeedback.blockReason:
            finish = "content_filter"
        out.append(Finish(finish))
        if chunk.usageMetadata is not None:
            out.append(map_usage(chunk.usageMetadata))
        return out

    def decoder(self, parser: SSEParser, limits: RateLimitReading) -> StreamDecoder:
        return _GeminiDecoder(self, parser, limits)


class _GeminiDecoder(StreamDecoder):
    """One ``streamGenerateContent`` stream: its last usage, and whether a finish reason came."""

    __slots__ = ("adapter", "finished", "limits", "parser", "usage")

    def __init__(self, adapter: GeminiAdapter, parser: SSEParser, limits: RateLimitReading) -> None:
        self.adapter = adapter
        self.parser = parser
        self.limits = limits
        self.usage: _UsageMeta | None = None
        self.finished = False

    def feed(self, event: SSEEvent, out: list[StreamEvent]) -> bool:
        try:
            chunk = _decoder.decode(event.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.adapter.malformed(self.limits, event.data, exc) from None
        if chunk.error is not None:
            err = chunk.error
            code = err.code if isinstance(err.code, int) else None
            a = self.adapter
            raise classify_stream_error(
                a.provider, err.status, err.message or "", self.limits, code=code, secret=a._api_key
            )
        if chunk.usageMetadata is not None:
            self.usage = chunk.usageMetadata  # restated cumulatively in each chunk: keep the last
        for cand in (chunk.candidates or ())[:1]:
            for part in (cand.content.parts or ()) if cand.content else ():
                if part.text:
                    out.append(Reasoning(part.text) if part.thought else Content(part.text))
            if cand.finishReason and not self.finished:
                self.finished = True
                out.append(Finish(FINISH_REASONS.get(cand.finishReason, "other")))
        if chunk.promptFeedback is not None and chunk.promptFeedback.blockReason and not self.finished:
            self.finished = True
            out.append(Finish("content_filter"))
        return False  # no terminal event: the body ends after the finish reason

    def ended(self, out: list[StreamEvent]) -> ProviderError | None:
        if not self.finished or self.parser.pending:
            return self.adapter.ended_early(self.parser, self.limits, "a finishReason")
        if self.usage is not None:
            out.append(map_usage(self.usage))
        return None
