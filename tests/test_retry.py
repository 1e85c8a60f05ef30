"""RetryPolicy: which errors are retried, the SDK-style delays, seeded jitter."""

from __future__ import annotations

import random

import pytest

from runner.engine.retry import RetryPolicy
from runner.errors import CallTimeout, FatalProviderError, ProviderError, RateLimited, ServerError, StreamBroken

RETRYABLE = [RateLimited, ServerError, StreamBroken, CallTimeout]


@pytest.mark.parametrize("cls", RETRYABLE)
def test_retryable_classes_are_retried(cls: type[ProviderError]) -> None:
    assert RetryPolicy(max_attempts=3, seed=1).delay(1, cls("x", provider="p")) is not None


@pytest.mark.parametrize("cls", [FatalProviderError, ProviderError])
def test_fatal_errors_are_not_retried(cls: type[ProviderError]) -> None:
    assert RetryPolicy(max_attempts=5, seed=1).delay(1, cls("x", provider="p", status=400)) is None


def test_the_retryable_flag_of_an_instance_wins() -> None:
    quota = RateLimited("insufficient_quota", status=429, retryable=False)  # x-should-retry: false
    assert RetryPolicy(seed=1).delay(1, quota) is None
    conflict = FatalProviderError("409", status=409, retryable=True)
    assert RetryPolicy(seed=1).delay(1, conflict) is not None


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, seed=1)
    err = ServerError("503", status=503)
    assert [policy.delay(a, err) is None for a in (1, 2, 3, 4)] == [False, False, True, True]


def test_backoff_doubles_to_the_cap_within_the_jitter_band() -> None:
    policy = RetryPolicy(max_attempts=100, base=0.5, cap=8.0, jitter=0.25, seed=7)
    err = StreamBroken("reset")
    for attempt, plain in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (60, 8.0), (99, 8.0)]:
        d = policy.delay(attempt, err)
        assert d is not None and 0.75 * plain < d <= plain, (attempt, d)


def test_no_jitter_gives_the_plain_schedule() -> None:
    policy = RetryPolicy(max_attempts=10, jitter=0.0)
    err = CallTimeout("idle")
    assert [policy.delay(a, err) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_same_seed_same_delays() -> None:
    err = ServerError("500")
    a = [RetryPolicy(max_attempts=9, seed=3).delay(k, err) for k in range(1, 9)]
    b = [RetryPolicy(max_attempts=9, seed=3).delay(k, err) for k in range(1, 9)]
    c = [RetryPolicy(max_attempts=9, rng=random.Random(4)).delay(k, err) for k in range(1, 9)]
    assert a == b != c


@pytest.mark.parametrize("server", [0.02, 1.52, 2.0, 60.0])
def test_server_delay_up_to_60s_is_used_as_given(server: float) -> None:
    err = RateLimited("429", status=429, retry_after_s=server)
    assert RetryPolicy(seed=1).delay(1, err) == server


def test_longer_server_delay_is_waited_out() -> None:
    err = RateLimited("429", status=429, retry_after_s=300.0)
    assert RetryPolicy(seed=1).delay(2, err) == 300.0
    assert RetryPolicy(seed=1, max_retry_after_s=120.0).delay(2, err) is None


@pytest.mark.parametrize("server", [0.0, -1.0, None])
def test_absent_or_non_positive_server_delay_falls_back_to_backoff(server: float | None) -> None:
    err = ServerError("503", status=503, retry_after_s=server)
    assert RetryPolicy(jitter=0.0).delay(3, err) == 2.0


def test_server_delay_applies_to_5xx_too() -> None:
    assert RetryPolicy(seed=1).delay(1, ServerError("529", status=529, retry_after_s=4.0)) == 4.0


@pytest.mark.parametrize("kw", [{"max_attempts": 0}, {"base": 0.0}, {"base": 2.0, "cap": 1.0}, {"jitter": 1.5}])
def test_bad_configuration_is_named(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        RetryPolicy(**kw)  # type: ignore[arg-type]


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().delay(0, ServerError("x"))
