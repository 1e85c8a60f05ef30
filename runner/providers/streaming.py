"""The skeleton every HTTP+SSE adapter shares; a protocol module fills in four methods.

A subclass says where to POST (`url`), what to send (`headers`, `body`) and how to turn
the stream's `SSEEvent`s into typed events (`decode`). Opening, error classification, the
rate-limit reading, cancellation and closing are done once, here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import msgspec

from runner.providers.base import Adapter, StreamResponse
from runner.providers.classify import stream_broken
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.wire import iter_sse, open_stream, request_id
from runner.types import ChatRequest, RateLimitReading, StreamEvent

_json = msgspec.json.Encoder()


class SSEAdapter(Adapter):
    """An adapter whose response is a ``text/event-stream``.

    Every SSE adapter accepts the options ``extra_headers`` (a dict sent with each request) and
    ``seed_header`` (a header name that carries `ChatRequest.seed`, for the simulator).
    """

    @abstractmethod
    def url(self, request: ChatRequest) -> str:
        """The endpoint for this request."""

    @abstractmethod
    def headers(self) -> dict[str, str]:
        """Request headers, auth included (never logged)."""

    @abstractmethod
    def payload(self, request: ChatRequest) -> dict[str, object]:
        """The JSON request body as a dict (tests and `anytime doctor` inspect it)."""

    @abstractmethod
    def decode(
        self, events: AsyncIterator[SSEEvent], parser: SSEParser, limits: RateLimitReading
    ) -> AsyncGenerator[StreamEvent, None]:
        """Turn SSE events into typed events; raise `StreamBroken` if the stream ends early.

        An async generator (``async def`` with ``yield``), so that `stream` can close it early.
        """

    def encode(self, request: ChatRequest) -> bytes:
        return _json.encode(self.payload(request))

    def unstreamed_payload(self, request: ChatRequest) -> dict[str, object]:
        """The request body for a response that does not stream (a line of a provider batch)."""
        body = self.payload(request)
        body.pop("stream", None)
        body.pop("stream_options", None)
        return body

    def decode_unstreamed(self, data: bytes) -> list[StreamEvent]:
        """A whole (unstreamed) response body as the typed events its stream would have given:
        reasoning, content, the finish and the usage.

        Raises:
            StreamBroken: the body is not a response of this protocol.
        """
        raise NotImplementedError(f"{self.protocol} has no unstreamed response decoder")

    def broken_body(self, data: bytes, exc: Exception) -> Exception:
        """The error for a response body that is not one."""
        snippet = data[:120].decode(errors="replace")
        return stream_broken(self.provider, RateLimitReading(), f"malformed response body ({exc}): {snippet!r}")

    @asynccontextmanager
    async def stream(
        self, session: aiohttp.ClientSession, request: ChatRequest, on_bytes: Callable[[], None] | None = None
    ) -> AsyncIterator[StreamResponse]:
        async with open_stream(
            session,
            self.url(request),
            self.encode(request),
            self._all_headers(request),
            provider=self.provider,
            read_limits=self.read_limits,
            secret=self._api_key,
        ) as (resp, limits):
            parser = SSEParser()
            raw = iter_sse(resp, parser, self.provider, limits, on_bytes)
            events = self.decode(raw, parser, limits)
            try:
                yield StreamResponse(resp.status, request_id(resp.headers), limits, events)
            finally:
                # close both generators now rather than leave them to the loop's finaliser
                await events.aclose()
                await raw.aclose()

    def _all_headers(self, request: ChatRequest) -> dict[str, str]:
        extra = self.options.get("extra_headers")
        # extra headers (OpenRouter's X-Title, the simulator's x-sim-mode) never replace auth ones
        headers = {**dict(extra), **self.headers()} if isinstance(extra, dict) else self.headers()
        seed_header = self.options.get("seed_header")
        if isinstance(seed_header, str) and request.seed is not None:
            # protocols without a seed field (Anthropic, Responses, Gemini) pass it to the simulator here
            headers = {seed_header: str(request.seed), **headers}
        return headers

    def ended_early(self, parser: SSEParser, limits: RateLimitReading, expected: str) -> Exception:
        """The StreamBroken for a body that ended cleanly before its terminal event."""
        if not parser.received_any:
            # a deliberate empty 200 (llama-cpp-python answers a prompt over its context so): a
            # network cut would have broken the chunked body instead, so retrying cannot help
            exc = stream_broken(self.provider, limits, f"the server sent an empty stream (no {expected})")
            exc.retryable = False
            return exc
        where = "in the middle of an event" if parser.pending else "between events"
        return stream_broken(self.provider, limits, f"stream closed {where} before {expected}")

    def malformed(self, limits: RateLimitReading, data: str, exc: Exception) -> Exception:
        snippet = data[:120] + ("…" if len(data) > 120 else "")
        return stream_broken(self.provider, limits, f"malformed stream event ({exc}): {snippet!r}")


def bearer_headers(api_key: str | None) -> dict[str, str]:
    """JSON in, SSE out, and the key as a bearer token (OpenAI and every compatible host)."""
    headers = {"content-type": "application/json", "accept": "text/event-stream"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def versioned(base_url: str, version: str = "/v1") -> str:
    """``base_url`` with an API version path added when it has no path at all.

    ``http://127.0.0.1:8000`` (the simulator, a bare host) becomes ``…/v1``; a base URL that
    already names a path (``https://openrouter.ai/api/v1``) is used as given.
    """
    return base_url + version if urlsplit(base_url).path in ("", "/") else base_url
