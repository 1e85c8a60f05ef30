"""Protocol-neutral data: the chat request every part builds, and the typed events every adapter yields.

Imports nothing of the package: prompt building (`runner.tasks`), token counting
(`runner.tokens`), the adapters (`runner.providers`) and the engine all meet here, so none of
them needs another's module for its data.

Token counts in `Usage` are normalised across vendors so that pricing needs no vendor rules:
``output_tokens`` always includes reasoning tokens (xAI leaves them out of
``completion_tokens``; its adapter adds them back), and ``cached_input_tokens`` is the part of
``input_tokens`` served from a prompt cache.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# what a call is for: the streamed trace, a forced answer at a budget, or PDP / LEAP synthesis
CallKind = Literal["trace", "answer", "synthesis"]


class Message(msgspec.Struct, frozen=True):
    role: str  # system | user | assistant
    content: str


class CachePoint(msgspec.Struct, frozen=True):
    """Where a prefix of a request's prompt ends that another request of the run shares, so that
    its prompt cache is worth writing or reading: after ``offset`` characters of message
    ``message``.

    Providers that cache only where a request marks it (Anthropic's ``cache_control``
    breakpoints) mark these points; providers that cache every long prefix by themselves ignore
    them.
    """

    message: int
    offset: int


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A provider-neutral chat request.

    Attributes:
        model: the provider's model id.
        max_output_tokens: the cap on generated tokens, reasoning included.
        reasoning_budget: a thinking budget where the protocol has one (Anthropic
            ``budget_tokens``, Gemini ``thinkingBudget``, llama.cpp ``reasoning_budget_tokens``).
        cache_points: prefixes shared with other requests, ascending (see `CachePoint`).
    """

    model: str
    messages: tuple[Message, ...]
    max_output_tokens: int
    temperature: float | None = None
    seed: int | None = None
    reasoning_effort: str | None = None
    reasoning_budget: int | None = None
    cache_points: tuple[CachePoint, ...] = ()


class Reasoning(msgspec.Struct, frozen=True, tag="reasoning", gc=False):
    """A fragment of reasoning text (raw thinking, or a thinking summary)."""

    text: str


class Content(msgspec.Struct, frozen=True, tag="content", gc=False):
    """A fragment of the visible answer text."""

    text: str


class Usage(msgspec.Struct, frozen=True, tag="usage", gc=False):
    """Token usage as the provider reported it, normalised (see module docstring).

    Attributes:
        cache_write_input_tokens: Anthropic cache-creation tokens (part of input_tokens).
        billed_usd: the provider's own charge for the call, where it reports one.
    """

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    reasoning_tokens: int | None = None
    billed_usd: float | None = None


class PromptUsage(msgspec.Struct, frozen=True, tag="prompt_usage", gc=False):
    """The prompt side of the bill, stated when a response starts (Anthropic's ``message_start``).

    A stream cut at its last budget never gets its final `Usage`; this still prices its prompt
    exactly (cache reads and writes included), while its output is priced from our count.
    Normalised like `Usage`: ``input_tokens`` includes cache reads and writes.
    """

    input_tokens: int
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class Finish(msgspec.Struct, frozen=True, tag="finish", gc=False):
    """The end of generation as the provider states it.

    ``reason`` is one of ``stop``, ``length`` (the output cap was hit: expected, it is how a
    budget ends), ``content_filter``, ``truncated`` (the stream ended with no finish reason, e.g.
    ``[DONE]`` alone on an interrupted llama.cpp stream) or ``other``.
    """

    reason: str


# one of these per streamed chunk: ``gc=False`` (they hold only strings and numbers, so no cycle)
# keeps thousands of streams' events out of the garbage collector's passes
StreamEvent = Reasoning | Content | Usage | PromptUsage | Finish


class RateLimitReading(msgspec.Struct, frozen=True):
    """What one response's headers said about the lane's limits (None: not stated).

    Reset values are seconds from now; ``retry_after_s`` comes from ``retry-after-ms`` or
    ``retry-after``.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in self.__struct_fields__)
