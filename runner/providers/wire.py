"""HTTP plumbing shared by the adapters: posting, holding the stream open, translating failures.

This is the edge where foreign exceptions end: aiohttp, OS and timeout failures are turned into
`runner.errors` types here and nowhere else (classification of provider answers lives in
`runner.providers.classify`). Cancellation always passes through untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import aiohttp
import msgspec

from runner.errors import CallTimeout, ConfigurationRejected, EndpointUnreachable, ProviderError, StreamBroken
from runner.providers.classify import (
    attach,
    classify_http,
    classify_stream_error,
    decode_error_body,
    error_body_decoder,
    stream_broken,
)
from runner.providers.headers import lower_keys
from runner.types import RateLimitReading


@contextmanager
def translate(provider: str, limits: RateLimitReading | None, during: str) -> Iterator[None]:
    """Turn aiohttp / OS / timeout failures into `ProviderError`s (``during``: what was happening).

    Cancellation is never caught: cancelling a stream is how the last budget ends it.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        error = foreign_error(provider, limits, during, exc)
        if error is None:
            raise
        raise error from exc


def foreign_error(provider: str, limits: RateLimitReading | None, during: str, exc: Exception) -> ProviderError | None:
    """The `ProviderError` an aiohttp / OS / timeout failure stands for (None: not one of those).

    The stream's read loop calls this in its own ``except`` rather than entering `translate` on
    every read: a context manager per read is a generator and two objects per chunk.
    """
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return attach(CallTimeout(f"{provider}: timed out {during}", provider=provider), limits)
    if isinstance(exc, aiohttp.InvalidURL):
        msg = f"{provider}: invalid base URL {str(exc.url)[:200]!r}"
        return attach(ConfigurationRejected(msg, provider=provider), limits)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        msg = f"{provider}: the host name {exc.host!r} does not resolve"
        return attach(EndpointUnreachable(msg, provider=provider), limits)
    if isinstance(exc, aiohttp.ClientConnectorError):
        msg = f"{provider}: cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
        return attach(EndpointUnreachable(msg, provider=provider), limits)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        reason = type(exc).__name__
        detail = str(exc).split("\n", 1)[0][:200]
        msg = f"{provider}: connection lost {during} ({reason}{': ' + detail if detail else ''})"
        return attach(StreamBroken(msg, provider=provider), limits)
    return None


@asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    read_limits: Callable[[Mapping[str, str]], RateLimitReading],
    secret: str | None,
) -> AsyncIterator[tuple[aiohttp.ClientResponse, RateLimitReading]]:
    """POST ``body`` and hold the response open; a non-2xx answer raises its classified error.

    Leaving the context releases a fully read connection to the pool and closes any other, so an
    abandoned stream stops generation on the server side.
    """
    with translate(provider, None, "sending the request"):
        resp = await session.post(url, data=body, headers=dict(headers))
    try:
        limits = read_limits(resp.headers)
        if resp.status >= 300:
            with translate(provider, limits, "reading the error body"):
                error_body = await resp.read()
            raise classify_http(provider, resp.status, resp.headers, error_body, limits, secret=secret)
        if resp.content_type == "application/json":
            # some gateways answer a failed stream with a JSON error body and status 200
            with translate(provider, limits, "reading the response body"):
                json_body = await resp.read()
            raise _json_instead_of_stream(provider, json_body, limits, secret)
        yield resp, limits
    finally:
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()


def _json_instead_of_stream(provider: str, body: bytes, limits: RateLimitReading, secret: str | None) -> ProviderError:
    try:
        has_error = error_body_decoder.decode(body).error is not None
    except (msgspec.DecodeError, msgspec.ValidationError):
        has_error = False
    if has_error:
        message, label = decode_error_body(body)
        return classify_stream_error(provider, label, message, limits, secret=secret)
    return stream_broken(provider, limits, "expected an event stream, got a JSON body (was `stream` ignored?)")


def request_id(headers: Mapping[str, str]) -> str | None:
    h = lower_keys(headers)
    return h.get("x-request-id") or h.get("request-id") or h.get("x-goog-request-id")
