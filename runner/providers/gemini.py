"""Gemini ``streamGenerateContent?alt=sse`` with thought parts (providers.md §5).

Each event is a whole ``GenerateContentResponse``: parts with ``"thought": true`` are
`Reasoning`, other text parts `Content`. There is no terminal sentinel: the stream ends after
the event carrying ``finishReason``, so a body that ends before one is a broken stream.
``candidatesTokenCount`` leaves thinking out; the normalised output adds ``thoughtsTokenCount``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import msgspec

from runner.providers.classify import ErrorDetail, classify_stream_error
from runner.providers.counts import Tokens
from runner.providers.headers import openai_limits
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.streaming import SSEAdapter
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


class _Part(msgspec.Struct):
    text: str | None = None
    thought: bool = False


class _Content(msgspec.Struct):
    parts: list[_Part] | None = None


class _Candidate(msgspec.Struct):
    content: _Content | None = None
    finishReason: str | None = None


class _UsageMeta(msgspec.Struct):
    promptTokenCount: Tokens = 0
    candidatesTokenCount: Tokens = 0
    thoughtsTokenCount: Tokens | None = None
    cachedContentTokenCount: Tokens = 0


class _Feedback(msgspec.Struct):
    blockReason: str | None = None


class _Chunk(msgspec.Struct):
    candidates: list[_Candidate] | None = None
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

    async def decode(
        self, events: AsyncIterator[SSEEvent], parser: SSEParser, limits: RateLimitReading
    ) -> AsyncGenerator[StreamEvent, None]:
        usage: _UsageMeta | None = None
        finished = False
        async for ev in events:
            try:
                chunk = _decoder.decode(ev.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise self.malformed(limits, ev.data, exc) from None
            if chunk.error is not None:
                err = chunk.error
                code = err.code if isinstance(err.code, int) else None
                raise classify_stream_error(
                    self.provider, err.status, err.message or "", limits, code=code, secret=self._api_key
                )
            if chunk.usageMetadata is not None:
                usage = chunk.usageMetadata  # restated cumulatively in each chunk: keep the last
            for cand in (chunk.candidates or ())[:1]:
                for part in (cand.content.parts or ()) if cand.content else ():
                    if part.text:
                        yield Reasoning(part.text) if part.thought else Content(part.text)
                if cand.finishReason and not finished:
                    finished = True
                    yield Finish(FINISH_REASONS.get(cand.finishReason, "other"))
            if chunk.promptFeedback is not None and chunk.promptFeedback.blockReason and not finished:
                finished = True
                yield Finish("content_filter")
        if not finished or parser.pending:
            raise self.ended_early(parser, limits, "a finishReason")
        if usage is not None:
            yield map_usage(usage)
