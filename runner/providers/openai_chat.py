"""OpenAI Chat Completions streaming, for OpenAI and every OpenAI-compatible host.

Hosts differ in a few ways only, each an option (providers.md §3):

- ``reasoning_field``: where reasoning text arrives: ``reasoning_content`` (xAI, DeepSeek,
  SGLang, older vLLM), ``reasoning`` (OpenRouter, gpt-oss hosts, vLLM ≥ 0.11), ``think_tags``
  (``<think>`` blocks inline in ``content``, Together's R1; either field is accepted too), or
  None to accept either field.
- ``think_tags``: also split a leading ``<think>…</think>`` block out of ``content`` (on for
  hosts that may leak one: llama.cpp, generic compatible servers, the simulator).
- ``usage_quirk``: ``xai`` when ``completion_tokens`` leaves reasoning out (we add it back, so
  ``Usage.output_tokens`` always includes reasoning); ``auto`` adds it back only when the usage
  itself shows the split (``total_tokens == prompt + completion + reasoning``).
- ``cost_field``: read the provider's own charge (xAI ``cost_in_usd_ticks``, OpenRouter ``cost``).

plus the request's ``token_param`` (``max_completion_tokens`` or ``max_tokens``) and
``effort_param`` (``reasoning_effort``, or ``reasoning`` for OpenRouter's ``{"effort": …}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeGuard

import msgspec

from runner.errors import ProviderError
from runner.providers.classify import ErrorDetail, classify_stream_error
from runner.providers.counts import TICKS_PER_USD, Dollars, Ticks, Tokens
from runner.providers.headers import any_limits
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.streaming import SSEAdapter, StreamDecoder, bearer_headers, versioned
from runner.providers.think import ThinkSplitter
from runner.types import ChatRequest, Content, Finish, RateLimitReading, Reasoning, StreamEvent, Usage

ReasoningField = Literal["reasoning_content", "reasoning", "think_tags"] | None
_FIELDS = ("reasoning_content", "reasoning", "think_tags", None)


def _is_reasoning_field(value: object) -> TypeGuard[ReasoningField]:
    return value in _FIELDS


FINISH_REASONS = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
}


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class _Choice(msgspec.Struct, gc=False):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct, gc=False):
    cached_tokens: Tokens | None = None


class _CompletionDetails(msgspec.Struct, gc=False):
    reasoning_tokens: Tokens | None = None


class _Usage(msgspec.Struct, gc=False):
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    total_tokens: Tokens | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    prompt_cache_hit_tokens: Tokens | None = None  # DeepSeek
    cost: Dollars | None = None  # OpenRouter, USD
    cost_in_usd_ticks: Ticks | None = None  # xAI, 1e-10 USD


# decoded data holds no cycles, so none of these is tracked by the garbage collector (gc=False),
# and the choices come as a tuple: together ~20% off the decoding of every chunk
class _Chunk(msgspec.Struct, gc=False):
    choices: tuple[_Choice, ...] | None = None
    usage: _Usage | None = None
    error: ErrorDetail | str | None = None


_decoder = msgspec.json.Decoder(_Chunk)


class _Message(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class _WholeChoice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_WholeChoice] = []
    usage: _Usage | None = None


_completion_decoder = msgspec.json.Decoder(_Completion)


def map_usage(u: _Usage, *, quirk: str = "openai", cost_field: bool = False) -> Usage:
    """Normalise a Chat Completions usage object (see `runner.events` for the conventions)."""
    reasoning = u.completion_tokens_details.reasoning_tokens if u.completion_tokens_details else None
    output = u.completion_tokens
    if reasoning and (
        quirk == "xai" or (quirk == "auto" and u.total_tokens == u.prompt_tokens + u.completion_tokens + reasoning)
    ):
        output += reasoning  # xAI's completion_tokens excludes reasoning; its bill does not
    cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else None
    if cached is None:
        cached = u.prompt_cache_hit_tokens
    billed = None
    if cost_field:
        if u.cost_in_usd_ticks is not None:
            billed = u.cost_in_usd_ticks / TICKS_PER_USD
        elif u.cost is not None:
            billed = float(u.cost)
    return Usage(
        input_tokens=u.prompt_tokens,
        output_tokens=output,
        cached_input_tokens=cached or 0,
        reasoning_tokens=reasoning,
        billed_usd=billed,
    )


def decode_usage(payload: bytes | str, *, quirk: str = "openai", cost_field: bool = False) -> Usage:
    """Map a JSON usage object (as in a final chunk's ``usage``) to `Usage`; for tests and tools."""
    return map_usage(msgspec.json.decode(payload, type=_Usage), quirk=quirk, cost_field=cost_field)


class OpenAIChatAdapter(SSEAdapter):
    """``POST {base_url}/chat/completions`` with ``stream: true``.

    Options (all optional): ``reasoning_field``, ``think_tags`` (bool), ``usage_quirk``
    (``openai`` | ``xai`` | ``auto``),
    ``cost_field`` (bool), ``token_param`` (``max_completion_tokens`` | ``max_tokens``),
    ``effort_param`` (``reasoning_effort`` | ``reasoning``), ``extra_body`` (a dict merged into
    every request, e.g. OpenRouter's ``{"usage": {"include": true}}``).
    """

    protocol = "openai_chat"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        provider: str = "",
        options: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(base_url, api_key, provider=provider, options=options)
        o = self.options
        field = o.get("reasoning_field")
        if not _is_reasoning_field(field):
            raise ValueError(f"reasoning_field must be one of {_FIELDS}, got {field!r}")
        self.reasoning_field: ReasoningField = field
        self.usage_quirk = str(o.get("usage_quirk", "openai"))
        if self.usage_quirk not in ("openai", "xai", "auto"):
            raise ValueError(f"usage_quirk must be 'openai', 'xai' or 'auto', got {self.usage_quirk!r}")
        self.think_tags = bool(o.get("think_tags", False)) or field == "think_tags"
        self.cost_field = bool(o.get("cost_field", False))
        self.token_param = str(o.get("token_param", "max_completion_tokens"))
        if self.token_param not in ("max_completion_tokens", "max_tokens"):
            raise ValueError(f"token_param must be max_completion_tokens or max_tokens, got {self.token_param!r}")
        self.effort_param = str(o.get("effort_param", "reasoning_effort"))
        extra = o.get("extra_body") or {}
        self.extra_body: dict[str, object] = dict(extra) if isinstance(extra, Mapping) else {}

    def url(self, request: ChatRequest) -> str:
        return f"{versioned(self.base_url)}/chat/completions"

    def headers(self) -> dict[str, str]:
        return bearer_headers(self._api_key)

    def payload(self, request: ChatRequest) -> dict[str, object]:
        body: dict[str, object] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            self.token_param: request.max_output_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.seed is not None:
            body["seed"] = request.seed
        if request.reasoning_effort is not None:
            if self.effort_param == "reasoning":
                body["reasoning"] = {"effort": request.reasoning_effort}
            else:
                body["reasoning_effort"] = request.reasoning_effort
        if request.reasoning_budget is not None and self.options.get("budget_param"):
            body[str(self.options["budget_param"])] = request.reasoning_budget
        body.update(self.extra_body)
        return body

    def read_limits(self, headers: Mapping[str, str]) -> RateLimitReading:
        return any_limits(headers)

    def decoder(self, parser: SSEParser, limits: RateLimitReading) -> StreamDecoder:
        return _ChatDecoder(self, parser, limits)

    def decode_unstreamed(self, data: bytes) -> list[StreamEvent]:
        """A ``chat.completion`` body as the events its stream would have given."""
        try:
            completion = _completion_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.broken_body(data, exc) from None
        out: list[StreamEvent] = []
        choice = next((c for c in completion.choices if c.index == 0), None)
        if choice is not None and choice.message is not None:
            m = choice.message
            f = self.reasoning_field
            # as a stream's delta is read: the host's field, or either (both may carry the same text)
            reasoning = (
                m.reasoning_content
                if f == "reasoning_content"
                else m.reasoning
                if f == "reasoning"
                else m.reasoning_content or m.reasoning
            )
            if reasoning:
                out.append(Reasoning(reasoning))
            if m.content and self.think_tags:
                splitter = ThinkSplitter()
                pieces = [*splitter.feed(m.content), *splitter.flush()]
                out.extend(Reasoning(t) if is_r else Content(t) for is_r, t in pieces)
            elif m.content:
                out.append(Content(m.content))
        reason = choice.finish_reason if choice is not None else None
        out.append(Finish(FINISH_REASONS.get(reason, "other") if reason else "truncated"))
        if completion.usage is not None:
            out.append(self.usage(completion.usage))
        return out

    def usage(self, u: _Usage) -> Usage:
        return map_usage(u, quirk=self.usage_quirk, cost_field=self.cost_field)

    def stream_error(self, err: ErrorDetail | str, limits: RateLimitReading) -> Exception:
        if isinstance(err, str):
            return classify_stream_error(self.provider, None, err, limits, secret=self._api_key)
        labels = " ".join(str(x) for x in (err.type, err.code, err.status) if isinstance(x, str) and x)
        code = err.code if isinstance(err.code, int) else None
        return classify_stream_error(
            self.provider, labels or None, err.message or "", limits, code=code, secret=self._api_key
        )


class _ChatDecoder(StreamDecoder):
    """What one stream has seen so far, and the decoding of each of its chunks."""

    __slots__ = ("adapter", "field", "finished", "limits", "parser", "splitter", "usage")

    def __init__(self, adapter: OpenAIChatAdapter, parser: SSEParser, limits: RateLimitReading) -> None:
        self.adapter = adapter
        self.parser = parser
        self.limits = limits
        self.field = adapter.reasoning_field
        self.splitter = ThinkSplitter() if adapter.think_tags else None
        self.finished = False
        self.usage: _Usage | None = None

    def feed(self, event: SSEEvent, out: list[StreamEvent]) -> bool:
        data = event.data
        if data[:1] == b"[" and data.startswith(b"[DONE]"):  # a one-byte slice is never a new object
            return self._done(out)
        try:
            chunk = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if not data.strip():
                return False  # some hosts send an empty data line as a keep-alive
            raise self.adapter.malformed(self.limits, data, exc) from None
        if chunk.error:
            raise self.adapter.stream_error(chunk.error, self.limits)
        if chunk.usage is not None:
            self.usage = chunk.usage  # some hosts restate usage in every chunk: keep the last
        for choice in chunk.choices or ():
            if choice.index:
                continue
            d = choice.delta
            if d is not None:
                # the field this host streams reasoning in; with none named, either (a host in
                # transition may send both with the same text, so take one)
                f = self.field
                r = (
                    d.reasoning_content
                    if f == "reasoning_content"
                    else d.reasoning
                    if f == "reasoning"
                    else d.reasoning_content or d.reasoning
                )
                if r:
                    out.append(Reasoning(r))
                if d.content:
                    self._content(d.content, out)
            if choice.finish_reason and not self.finished:
                self._finish(choice.finish_reason, out)
        return False

    def _done(self, out: list[StreamEvent]) -> bool:
        """``[DONE]``: what the stream still owes, then the end."""
        self._flush_think(out)
        if not self.finished:
            out.append(Finish("truncated"))
        if self.usage is not None:
            out.append(self.adapter.usage(self.usage))
        return True

    def _finish(self, reason: str, out: list[StreamEvent]) -> None:
        self.finished = True
        self._flush_think(out)
        out.append(Finish(FINISH_REASONS.get(reason, "other")))

    def _content(self, text: str, out: list[StreamEvent]) -> None:
        if self.splitter is None:
            out.append(Content(text))
        else:
            out.extend(Reasoning(t) if is_r else Content(t) for is_r, t in self.splitter.feed(text))

    def _flush_think(self, out: list[StreamEvent]) -> None:
        if self.splitter is not None:
            out.extend(Reasoning(t) if is_r else Content(t) for is_r, t in self.splitter.flush())

    def ended(self, out: list[StreamEvent]) -> ProviderError:
        self.broke(out)
        return self.adapter.ended_early(self.parser, self.limits, "[DONE]")

    def broke(self, out: list[StreamEvent]) -> None:
        if self.usage is not None:
            # the host reported what it billed before the cut: pass that on, then the failure
            out.append(self.adapter.usage(self.usage))
