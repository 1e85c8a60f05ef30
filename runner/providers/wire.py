"""HTTP plumbing shared by the adapters: posting, reading SSE, and classifying failures.

This is the edge where foreign exceptions end. aiohttp and msgspec errors are turned into
`runner.errors` types here and nowhere else, and every `ProviderError` raised leaves with the
response's `RateLimitReading` as ``exc.limits`` (empty when there was no response).
Messages carry the status, the provider's error type and its message, never request headers;
the API key is scrubbed from anything the provider echoes back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import aiohttp
import msgspec

from runner.errors import (
    CallTimeout,
    FatalProviderError,
    ProviderError,
    RateLimited,
    ServerError,
    StreamBroken,
)
from runner.events import RateLimitReading
from runner.providers.headers import lower_keys, parse_go_duration
from runner.providers.sse import SSEEvent, SSEParser

_EMPTY = RateLimitReading()
_MAX_MESSAGE = 400


class _GoogleDetail(msgspec.Struct):
    retryDelay: str | None = None  # google.rpc.RetryInfo, a proto Duration such as "37s"


class ErrorDetail(msgspec.Struct):
    """The inner error object of OpenAI, Anthropic, Gemini and most compatible hosts."""

    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    status: str | None = None  # Gemini's RESOURCE_EXHAUSTED, UNAVAILABLE, ...
    details: list[_GoogleDetail] | None = None

    def retry_delay_s(self) -> float | None:
        """Gemini states its wait in the body rather than in a header."""
        for d in self.details or ():
            if d.retryDelay:
                try:
                    return parse_go_duration(d.retryDelay)
                except ValueError:
                    return None
        return None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail | str | None = None
    message: str | None = None
    detail: object = None  # FastAPI-based hosts (vLLM) answer {"detail": ...}


_error_body = msgspec.json.Decoder(ErrorBody)

# labels a provider puts in `type` / `code` / `status`, by what the caller should do
_RATE = ("rate_limit", "resource_exhausted", "too_many_requests")
_FATAL = (
    "insufficient_quota",
    "billing",
    "authentication",
    "permission",
    "invalid_request",
    "not_found",
    "invalid_argument",
    "unauthenticated",
    "request_too_large",
    "failed_precondition",
    "invalid_api_key",
    "model_not_found",
    "context_length",
)
_SERVER = ("overloaded", "server_error", "api_error", "timeout", "unavailable", "internal", "deadline")


def attach(exc: ProviderError, limits: RateLimitReading | None) -> ProviderError:
    """Set ``exc.limits`` (the contract: every ProviderError carries the headers' reading)."""
    exc.limits = limits or _EMPTY  # type: ignore[attr-defined]
    return exc


def scrub(text: str, secret: str | None) -> str:
    """Cut a provider message to a readable length and remove the key if it was echoed."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def decode_error_body(body: bytes) -> tuple[str, str | None]:
    """(message, label) from an error body of any known shape; raw text when it is not JSON."""
    message, label, _delay = _decode_error_body(body)
    return message, label


def _decode_error_body(body: bytes) -> tuple[str, str | None, float | None]:
    try:
        parsed = _error_body.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return body[:_MAX_MESSAGE].decode("utf-8", "replace").strip(), None, None
    err = parsed.error
    if isinstance(err, ErrorDetail):
        labels = [str(x) for x in (err.type, err.code, err.status) if x is not None and x != ""]
        return err.message or parsed.message or "", " ".join(labels) or None, err.retry_delay_s()
    message = _plain_message(parsed, body)
    return message, None, None


def _plain_message(parsed: ErrorBody, body: bytes) -> str:
    err = parsed.error
    if isinstance(err, str):
        return err
    if parsed.message:
        return parsed.message
    if parsed.detail is not None:
        return str(parsed.detail)
    return body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()


def _label_kind(label: str | None) -> type[ProviderError] | None:
    if not label:
        return None
    low = label.lower()
    if "insufficient_quota" in low:
        return FatalProviderError
    if any(word in low for word in _RATE):
        return RateLimited
    if any(word in low for word in _FATAL):
        return FatalProviderError
    if any(word in low for word in _SERVER):
        return ServerError
    return None


def classify_http(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    limits: RateLimitReading,
    *,
    secret: str | None = None,
) -> ProviderError:
    """The error for a non-2xx answer, by the official SDKs' rules (providers.md §1.5, §1.7).

    408, 409, 429 and 5xx (529 included) are retryable, other statuses are not; a 429 whose
    body says ``insufficient_quota`` is fatal (retrying cannot refill a quota), and an
    ``x-should-retry`` header overrides the status either way.
    """
    h = lower_keys(headers)
    message, label, body_delay = _decode_error_body(body)
    kind: type[ProviderError]
    if status == 429:
        kind = FatalProviderError if _label_kind(label) is FatalProviderError else RateLimited
    elif status in (408, 409) or status >= 500:
        kind = ServerError
    else:
        kind = FatalProviderError
    retryable: bool | None = None
    should = h.get("x-should-retry", "").strip().lower()
    if should in ("true", "false"):
        retryable = should == "true"
    elif kind is FatalProviderError and status == 429:
        retryable = False
    what = f" {label}" if label else ""
    text = f"{provider or 'provider'}: HTTP {status}{what}: {scrub(message, secret) or '(no message)'}"
    retry_after = limits.retry_after_s if limits.retry_after_s is not None else body_delay
    exc = kind(text, provider=provider, status=status, retry_after_s=retry_after, retryable=retryable)
    return attach(exc, limits)


def classify_stream_error(
    provider: str,
    label: str | None,
    message: str,
    limits: RateLimitReading,
    *,
    code: int | None = None,
    secret: str | None = None,
) -> ProviderError:
    """The error for an error event that arrived inside a 200 stream.

    Classified by its type label (``overloaded_error`` → ServerError, ``rate_limit_error`` →
    RateLimited, ``invalid_request_error`` → fatal); a numeric code (OpenRouter) is read as an
    HTTP status; anything unknown is a retryable ServerError, since the request itself was accepted.
    """
    kind = _label_kind(label)
    if kind is None and code is not None:
        kind = RateLimited if code == 429 else ServerError if code >= 500 or code in (408, 409) else None
        kind = kind or (FatalProviderError if 400 <= code < 500 else None)
    kind = kind or ServerError
    what = f" {label}" if label else ""
    text = (
        f"{provider or 'provider'}: error inside the stream{what}: {scrub(message, secret) or '(no message)'}"
    )
    return attach(kind(text, provider=provider, status=code), limits)


@contextmanager
def translate(provider: str, limits: RateLimitReading | None, during: str) -> Iterator[None]:
    """Turn aiohttp / OS / timeout failures into `ProviderError`s (``during``: what was happening).

    Cancellation is never caught: cancelling a stream is how the last budget ends it.
    """
    try:
        yield
    except ProviderError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise attach(CallTimeout(f"{provider}: timed out {during}", provider=provider), limits) from exc
    except aiohttp.InvalidURL as exc:
        msg = f"{provider}: invalid base URL {str(exc.url)[:200]!r}: fix providers.{provider}.base_url"
        raise attach(FatalProviderError(msg, provider=provider), limits) from exc
    except aiohttp.ClientConnectorError as exc:
        msg = f"{provider}: cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
        raise attach(ServerError(msg, provider=provider), limits) from exc
    except (aiohttp.ClientError, OSError) as exc:
        reason = type(exc).__name__
        detail = str(exc).split("\n", 1)[0][:200]
        msg = f"{provider}: connection lost {during} ({reason}{': ' + detail if detail else ''})"
        raise attach(StreamBroken(msg, provider=provider), limits) from exc


def stream_broken(provider: str, limits: RateLimitReading, problem: str) -> ProviderError:
    return attach(StreamBroken(f"{provider}: {problem}", provider=provider), limits)


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


def _json_instead_of_stream(
    provider: str, body: bytes, limits: RateLimitReading, secret: str | None
) -> ProviderError:
    try:
        has_error = _error_body.decode(body).error is not None
    except (msgspec.DecodeError, msgspec.ValidationError):
        has_error = False
    if has_error:
        message, label = decode_error_body(body)
        return classify_stream_error(provider, label, message, limits, secret=secret)
    return stream_broken(
        provider, limits, "expected an event stream, got a JSON body (was `stream` ignored?)"
    )


async def iter_sse(
    resp: aiohttp.ClientResponse, parser: SSEParser, provider: str, limits: RateLimitReading
) -> AsyncIterator[SSEEvent]:
    """The events of a response body, read as the socket delivers them; ends at EOF."""
    content = resp.content
    while True:
        with translate(provider, limits, "reading the stream"):
            chunk = await content.readany()
        if not chunk:
            return
        for event in parser.feed(chunk):
            yield event


def request_id(headers: Mapping[str, str]) -> str | None:
    h = lower_keys(headers)
    return h.get("x-request-id") or h.get("request-id") or h.get("x-goog-request-id")
