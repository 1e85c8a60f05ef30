"""Rate-limit and retry header parsing for every documented form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.providers.headers import anthropic_limits, any_limits, openai_limits, parse_go_duration, parse_retry_after
from runner.types import RateLimitReading

NOW = datetime(2025, 8, 21, 12, 40, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("20ms", 0.02),
        ("120ms", 0.12),
        ("6m0s", 360.0),
        ("1.52s", 1.52),
        ("2m59.5s", 179.5),
        ("1h0m0s", 3600.0),
        ("1h2m3.5s", 3723.5),
        ("500us", 0.0005),
        ("0s", 0.0),
        ("3", 3.0),
        ("0.25", 0.25),
        (" 7s ", 7.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "1s junk", "m5", "1.2.3s"])
def test_go_duration_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_go_duration(text)


def test_openai_headers_documented_example() -> None:
    headers = {
        "X-RateLimit-Limit-Requests": "500",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-remaining-tokens": "29016",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-reset-tokens": "6m0s",
        "x-ratelimit-limit-tokens_usage_based": "999",
    }
    assert openai_limits(headers) == RateLimitReading(
        limit_requests=500,
        remaining_requests=499,
        reset_requests_s=0.12,
        limit_tokens=30000,
        remaining_tokens=29016,
        reset_tokens_s=360.0,
    )


def test_openai_429_headers() -> None:
    reading = openai_limits(
        {
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "1.52s",
            "retry-after": "2",
        }
    )
    assert reading.remaining_tokens == 0
    assert reading.reset_tokens_s == pytest.approx(1.52)
    assert reading.retry_after_s == 2.0


def test_unreadable_values_stay_none() -> None:
    reading = openai_limits({"x-ratelimit-limit-requests": "lots", "x-ratelimit-reset-tokens": "soon"})
    assert reading.is_empty()


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after": "Thu, 21 Aug 2025 12:40:30 GMT"}, NOW) == 30.0
    assert parse_retry_after({"retry-after": "Thu, 21 Aug 2025 12:39:30 GMT"}, NOW) == 0.0
    assert parse_retry_after({"retry-after": "whenever"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after-ms": "bad", "retry-after": "4"}) == 4.0


def test_anthropic_headers_rfc3339_resets() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:01Z",
        "anthropic-ratelimit-tokens-limit": "38000",
        "anthropic-ratelimit-tokens-remaining": "37000",
        "anthropic-ratelimit-tokens-reset": "2025-08-21T12:41:00Z",
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:41:00Z",
        "retry-after": "12",
    }
    assert anthropic_limits(headers, NOW) == RateLimitReading(
        limit_requests=50,
        remaining_requests=49,
        reset_requests_s=1.0,
        limit_tokens=38000,
        remaining_tokens=37000,
        reset_tokens_s=60.0,
        retry_after_s=12.0,
    )


def test_anthropic_falls_back_to_input_tokens_and_offsets() -> None:
    reading = anthropic_limits(
        {
            "anthropic-ratelimit-input-tokens-limit": "80000",
            "anthropic-ratelimit-input-tokens-remaining": "79000",
            "anthropic-ratelimit-input-tokens-reset": "2025-08-21T14:40:30+02:00",
        },
        NOW,
    )
    assert (reading.limit_tokens, reading.remaining_tokens, reading.reset_tokens_s) == (80000, 79000, 30.0)


def test_any_limits_picks_the_family_present() -> None:
    assert any_limits({"anthropic-ratelimit-requests-limit": "5"}, NOW).limit_requests == 5
    assert any_limits({"x-ratelimit-limit-requests": "7"}, NOW).limit_requests == 7
    assert any_limits({}, NOW).is_empty()
