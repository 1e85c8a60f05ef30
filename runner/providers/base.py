"""The contract every provider adapter fulfils.

An adapter turns a `ChatRequest` into an HTTP request and the response into typed events
(`runner.events`). It never sleeps, retries, counts spend or draws anything. What it knows but
must not act on it returns as values: the error classification (as a `ProviderError` subclass
with ``retryable`` / ``retry_after_s``) and the rate-limit reading of every response's headers.
Foreign exceptions (aiohttp, JSON decoding) are translated at this edge; nothing above the
adapters imports aiohttp's exception types.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import ClassVar

import aiohttp
import msgspec

from runner.types import ChatRequest, RateLimitReading, StreamEvent


class StreamResponse(msgspec.Struct):
    """An open streamed response: the status line's facts and its events.

    Read either ``events`` (one at a time) or ``batches`` (the events of one socket read together,
    as the lane does), not both: they drain the same stream.
    """

    status: int
    request_id: str | None
    limits: RateLimitReading
    events: AsyncIterator[StreamEvent]
    batches: AsyncIterator[list[StreamEvent]]


class Adapter(ABC):
    """One wire protocol. Capabilities are class attributes, not isinstance checks."""

    protocol: ClassVar[str]
    # whether reasoning text streams at all (False for OpenAI o-series via Chat Completions)
    streams_reasoning: ClassVar[bool] = True
    needs_key: ClassVar[bool] = True

    def __init__(
        self, base_url: str, api_key: str | None, *, provider: str = "", options: Mapping[str, object] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key  # never logged, never put in an error
        self.provider = provider
        self.options = dict(options or {})

    @property
    def secret(self) -> str | None:
        """The key, only so that errors can scrub it from what a provider echoes back."""
        return self._api_key

    @abstractmethod
    def stream(
        self, session: aiohttp.ClientSession, request: ChatRequest, on_bytes: Callable[[], None] | None = None
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """Send the request and open the stream.

        ``on_bytes`` is called whenever bytes of the body arrive, events or not (keep-alive
        comments, pings): a silent model that keeps its connection alive is not a stalled one.

        Raises (on entering) a `runner.errors.ProviderError` subclass for a non-2xx answer or a
        connection failure, with ``limits`` attribute set to the headers' `RateLimitReading`.
        Iterating ``events`` (or ``batches``) raises `StreamBroken` for a cut or malformed stream
        and the matching `ProviderError` for an error event inside the stream, after every event
        that came before it. Leaving the context closes the connection (which is how a stream is
        cancelled at the last budget).
        """

    @abstractmethod
    def read_limits(self, headers: Mapping[str, str]) -> RateLimitReading:
        """Parse the protocol's rate-limit headers (missing ones stay None)."""
