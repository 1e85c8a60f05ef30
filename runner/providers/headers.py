"""Rate-limit and retry headers of every provider, read into `RateLimitReading` values.

Providers state their limits three ways: OpenAI-style ``x-ratelimit-*`` headers with Go duration
resets (``6m0s``), Anthropic ``anthropic-ratelimit-*`` headers with RFC 3339 reset instants, and
the generic ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date). A header that is
missing or unreadable stays None: a wrong limit is worse than an unknown one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from runner.types import RateLimitReading

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_GO_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_go_duration(text: str) -> float:
    """Read a Go-style duration (``2m59.5s``, ``120ms``, ``1h0m0s``) as seconds.

    A bare number is taken as seconds, as some OpenAI-compatible hosts send it.

    Raises:
        ValueError: the text is not a duration.
    """
    s = text.strip()
    try:
        bare = float(s)
    except ValueError:
        bare = None
    if bare is not None:
        if not math.isfinite(bare):
            raise ValueError(f"not a duration: {text!r}")
        return max(0.0, bare)
    total = 0.0
    pos = 0
    # the alternation lists `ms` before `m`, so `500ms` is never read as 500 minutes
    for match in _GO_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _GO_UNIT_S[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(s):
        raise ValueError(f"not a Go duration: {text!r}")
    return total


def lower_keys(headers: Mapping[str, str]) -> Mapping[str, str]:
    """A case-insensitive view: aiohttp's headers already are one, plain dicts are lowered."""
    if hasattr(headers, "getone"):  # multidict.CIMultiDictProxy
        return headers
    return {k.lower(): v for k, v in headers.items()}


def _int(value: str | None) -> int | None:
    """A count (None: missing, or not a whole number >= 0: ``inf``, ``-1`` and the like are unreadable)."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number >= 0 else None


def _seconds(value: float) -> float | None:
    """A wait in seconds, or None when it is not a finite number (``inf`` would stall a lane for good)."""
    return max(0.0, value) if math.isfinite(value) else None


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return _seconds(parse_go_duration(value))
    except ValueError:
        return None


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date).

    Args:
        headers: response headers (case-insensitive mapping or a dict with lower-case keys).
        now: the reference instant for an HTTP-date value (default: the current UTC time).
    """
    h = lower_keys(headers)
    ms = h.get("retry-after-ms")
    if ms is not None:
        try:
            return _seconds(float(ms.strip()) / 1000.0)
        except ValueError:
            pass
    value = h.get("retry-after")
    if value is None:
        return None
    try:
        return _seconds(float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def openai_limits(headers: Mapping[str, str], now: datetime | None = None) -> RateLimitReading:
    """Read OpenAI-style ``x-ratelimit-*`` headers (also sent by xAI, OpenRouter, the simulator)."""
    h = lower_keys(headers)
    return RateLimitReading(
        limit_requests=_int(h.get("x-ratelimit-limit-requests")),
        remaining_requests=_int(h.get("x-ratelimit-remaining-requests")),
        reset_requests_s=_duration(h.get("x-ratelimit-reset-requests")),
        limit_tokens=_int(h.get("x-ratelimit-limit-tokens")),
        remaining_tokens=_int(h.get("x-ratelimit-remaining-tokens")),
        reset_tokens_s=_duration(h.get("x-ratelimit-reset-tokens")),
        retry_after_s=parse_retry_after(h, now),
    )


def _rfc3339_in(value: str | None, now: datetime) -> float | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return _duration(value)  # some relays send a duration instead of an instant
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def anthropic_limits(headers: Mapping[str, str], now: datetime | None = None) -> RateLimitReading:
    """Read ``anthropic-ratelimit-*`` headers; resets are RFC 3339 instants, turned into seconds.

    The token figures are the ``tokens-*`` headers (the most restrictive limit in effect), else
    the input-token (ITPM) ones.
    """
    h = lower_keys(headers)
    now = now or datetime.now(UTC)
    prefix = "anthropic-ratelimit-"
    tokens = "tokens" if (prefix + "tokens-limit") in h or (prefix + "tokens-remaining") in h else "input-tokens"
    return RateLimitReading(
        limit_requests=_int(h.get(prefix + "requests-limit")),
        remaining_requests=_int(h.get(prefix + "requests-remaining")),
        reset_requests_s=_rfc3339_in(h.get(prefix + "requests-reset"), now),
        limit_tokens=_int(h.get(f"{prefix}{tokens}-limit")),
        remaining_tokens=_int(h.get(f"{prefix}{tokens}-remaining")),
        reset_tokens_s=_rfc3339_in(h.get(f"{prefix}{tokens}-reset"), now),
        retry_after_s=parse_retry_after(h, now),
    )


def any_limits(headers: Mapping[str, str], now: datetime | None = None) -> RateLimitReading:
    """Whichever header family is present (OpenAI-style unless Anthropic's), for hosts of any lineage."""
    h = lower_keys(headers)
    if any(key.startswith("anthropic-ratelimit-") for key in h):
        return anthropic_limits(h, now)
    return openai_limits(h, now)
