"""The skeleton every HTTP+SSE adapter shares; a protocol module fills in four methods and a decoder.

A subclass says where to POST (`url`), what to send (`headers`, `payload`) and how one stream's
`SSEEvent`s turn into typed events (`decoder`: a `StreamDecoder`, plain synchronous code).
Opening, the read loop, error classification, the rate-limit reading, cancellation and closing
are done once, here.

The read loop (`SSEAdapter.batches`) is the client's hot path: one iteration per socket read, each
read parsed and decoded with no await, so a stream costs one async generator (not three nested
ones), and the events of one read leave together as one batch (`StreamResponse.batches`). A read holds one event
when the client keeps up with the stream and many when it falls behind; then everything per
read (the wake-up, the watchdog, handing text to the tokenizer) is paid once for many events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import msgspec

from runner.errors import ProviderError, StreamBroken
from runner.providers.base import Adapter, StreamResponse
from runner.providers.classify import stream_broken
from runner.providers.sse import SSEEvent, SSEParser
from runner.providers.wire import foreign_error, open_stream, request_id
from runner.types import ChatRequest, RateLimitReading, StreamEvent

_json = msgspec.json.Encoder()


class StreamDecoder(ABC):
    """One stream's protocol state: SSE events in, typed events out, with no awaits.

    `feed` may raise a `ProviderError` (an error event, a malformed one as `StreamBroken`); the
    events it appended before that still reach the caller, then the error.
    """

    __slots__ = ()

    @abstractmethod
    def feed(self, event: SSEEvent, out: list[StreamEvent]) -> bool:
        """Append the typed events ``event`` stands for; True at the protocol's terminal event
        (nothing after it is read)."""

    @abstractmethod
    def ended(self, out: list[StreamEvent]) -> ProviderError | None:
        """The body ended before a terminal event: append what is still owed (a usage the host
        reported), and return the error this ending is (None: a normal end for the protocol)."""

    def broke(self, out: list[StreamEvent]) -> None:
        """The stream broke (connection lost, malformed event): append what the provider reported
        before the break and must still be counted (nothing, unless a protocol says otherwise)."""
        return  # most protocols report usage only at the end: nothing is owed


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
    def decoder(self, parser: SSEParser, limits: RateLimitReading) -> StreamDecoder:
        """A fresh decoder for one stream (``parser`` is the stream's, for `ended_early`)."""

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
            batches = self.batches(resp.content.readany, limits, on_bytes)
            events = _one_by_one(batches)
            try:
                yield StreamResponse(resp.status, request_id(resp.headers), limits, events, batches)
            finally:
                # close both generators now rather than leave them to the loop's finaliser
                await events.aclose()
                await batches.aclose()

    async def batches(
        self,
        read: Callable[[], Awaitable[bytes]],
        limits: RateLimitReading,
        on_bytes: Callable[[], None] | None = None,
    ) -> AsyncGenerator[list[StreamEvent], None]:
        """The typed events of a body, one list per read (none for a read that completes no
        event); ends at the terminal event or at the end of the body (``read`` gives b"").

        ``read`` is the response's ``readany``; a provider error (after the events before it) or a
        foreign one translated (aiohttp's, the OS's) ends the iteration.
        """
        parser = SSEParser()
        decoder = self.decoder(parser, limits)
        while True:
            out: list[StreamEvent] = []
            error: ProviderError | None = None
            try:
                chunk = await read()
                if chunk:
                    if on_bytes is not None:
                        on_bytes()
                    done = _decode_read(parser, decoder, chunk, out)
                else:
                    done = True
                    error = decoder.ended(out)
            except StreamBroken as exc:
                decoder.broke(out)
                done, error = True, exc
            except ProviderError as exc:
                done, error = True, exc
            except Exception as exc:
                failure = foreign_error(self.provider, limits, "reading the stream", exc)
                if failure is None:
                    raise
                decoder.broke(out)
                done, error = True, failure
                failure.__cause__ = exc
            if out:
                yield out
            if error is not None:
                raise error
            if done:
                return

    def _all_headers(self, request: ChatRequest) -> dict[str, str]:
        extra = self.options.get("extra_headers")
        # extra headers (OpenRouter's X-Title, the simulator's x-sim-mode) never replace auth ones
        headers = {**dict(extra), **self.headers()} if isinstance(extra, dict) else self.headers()
        seed_header = self.options.get("seed_header")
        if isinstance(seed_header, str) and request.seed is not None:
            # protocols without a seed field (Anthropic, Responses, Gemini) pass it to the simulator here
            headers = {seed_header: str(request.seed), **headers}
        return headers

    def ended_early(self, parser: SSEParser, limits: RateLimitReading, expected: str) -> ProviderError:
        """The StreamBroken for a body that ended cleanly before its terminal event."""
        if not parser.received_any:
            # a deliberate empty 200 (llama-cpp-python answers a prompt over its context so): a
            # network cut would have broken the chunked body instead, so retrying cannot help
            exc = stream_broken(self.provider, limits, f"the server sent an empty stream (no {expected})")
            exc.retryable = False
            return exc
        where = "in the middle of an event" if parser.pending else "between events"
        return stream_broken(self.provider, limits, f"stream closed {where} before {expected}")

    def malformed(self, limits: RateLimitReading, data: bytes, exc: Exception) -> ProviderError:
        text = data[:120].decode("utf-8", "replace") + ("…" if len(data) > 120 else "")
        return stream_broken(self.provider, limits, f"malformed stream event ({exc}): {text!r}")


def _decode_read(parser: SSEParser, decoder: StreamDecoder, chunk: bytes, out: list[StreamEvent]) -> bool:
    """Decode one read of the body into ``out``; True once the terminal event is seen."""
    for event in parser.feed(chunk):
        if decoder.feed(event, out):
            return True
    return False


async def _one_by_one(batches: AsyncIterator[list[StreamEvent]]) -> AsyncGenerator[StreamEvent, None]:
    """The batches' events one at a time (`StreamResponse.events`)."""
    async for batch in batches:
        for event in batch:
            yield event


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
