"""Error classification: what a failed call means for the caller, by the official SDKs' rules.

A non-2xx answer is classified by its status (408, 409, 429 and 5xx are retryable; a 429 for an
exhausted quota is not), refined by the provider's error label and the ``x-should-retry``
header. An error event inside a 200 stream is classified by its label. Every error leaves with
the response's `RateLimitReading` as ``exc.limits``, and with the API key scrubbed from any
message the provider echoed back.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from runner.errors import (
    ConfigurationRejected,
    FatalProviderError,
    ProviderError,
    RateLimited,
    ServerError,
    StreamBroken,
)
from runner.providers.headers import lower_keys, parse_go_duration
from runner.types import RateLimitReading

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


error_body_decoder = msgspec.json.Decoder(ErrorBody)

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
    exc.limits = limits or _EMPTY
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
        parsed = error_body_decoder.decode(body)
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


def _kind_of_status(status: int, label: str | None) -> type[ProviderError]:
    quota = label is not None and "insufficient_quota" in label.lower()
    unknown_model = label is not None and "model_not_found" in label.lower()
    if status in (401, 403, 404) or quota or unknown_model:
        return ConfigurationRejected
    if status == 429:
        return FatalProviderError if _label_kind(label) is FatalProviderError else RateLimited
    if status in (408, 409) or status >= 500:
        return ServerError
    return FatalProviderError


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
    ``x-should-retry`` header overrides the status either way. 401, 403, 404, an exhausted quota
    and an unknown model are `ConfigurationRejected`: every call of the lane would fail alike.
    """
    h = lower_keys(headers)
    message, label, body_delay = _decode_error_body(body)
    kind = _kind_of_status(status, label)
    retryable: bool | None = None
    should = h.get("x-should-retry", "").strip().lower()
    if should in ("true", "false"):
        retryable = should == "true"
    elif issubclass(kind, FatalProviderError) and status == 429:
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
    text = f"{provider or 'provider'}: error inside the stream{what}: {scrub(message, secret) or '(no message)'}"
    return attach(kind(text, provider=provider, status=code), limits)


def stream_broken(provider: str, limits: RateLimitReading, problem: str) -> ProviderError:
    return attach(StreamBroken(f"{provider}: {problem}", provider=provider), limits)
