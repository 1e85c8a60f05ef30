"""When to try a failed call again, and after how long.

The rules follow the official OpenAI and Anthropic SDKs (providers.md §1.7): a server delay
(``retry-after-ms`` / ``retry-after``) in (0, 60] seconds is used as given; otherwise the delay is
exponential, ``min(base × 2^k, cap)`` for the k-th retry, shortened by up to ``jitter`` of itself at
random so that calls failing together do not come back together. Unlike the SDKs, a server delay
over 60 s is waited out rather than replaced by a short backoff: the provider said when it will
serve us again, and a sweep has time. Fatal errors are never retried.

A 429 is not a failure of the call but of our pacing: it never uses up one of ``max_attempts``
while the call is younger than ``rate_limit_patience_s`` (the lane passes its total timeout,
1800 s by default). The call re-enters the lane's limiter, which holds the whole lane for the
server's ``retry-after`` and re-syncs its buckets from the 429's headers; from the second 429 in
a row the call also waits a backoff of its own first, so a server whose hints do not hold is not
hammered. Past the patience, a 429 counts as an attempt like any other retryable error.

The policy only decides; the scheduler sleeps.
"""

from __future__ import annotations

import random

from runner.errors import ProviderError

SDK_RETRY_AFTER_MAX_S = 60.0


class RetryPolicy:
    """Retry decisions for one lane.

    Args:
        max_attempts: attempts in all, the first included (1 = never retry).
        base: the first backoff, in seconds.
        cap: the longest backoff, in seconds (a server's Retry-After may be longer).
        jitter: the fraction, in [0, 1], by which a backoff is shortened at random.
        seed: seeds the jitter, for reproducible tests; ignored when ``rng`` is given.
        rng: the random source for the jitter.
        max_retry_after_s: give up when the server asks for a longer wait than this (None: never).
        rate_limit_patience_s: how long a call may wait out 429s without using up attempts.
    """

    def __init__(
        self,
        max_attempts: int = 6,
        base: float = 0.5,
        cap: float = 8.0,
        jitter: float = 0.25,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        max_retry_after_s: float | None = None,
        rate_limit_patience_s: float = 1800.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"RetryPolicy: max_attempts must be >= 1, got {max_attempts}")
        if base <= 0 or cap < base:
            raise ValueError(f"RetryPolicy: need 0 < base <= cap, got base={base}, cap={cap}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"RetryPolicy: jitter must be in [0, 1], got {jitter}")
        self.max_attempts = max_attempts
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.max_retry_after_s = max_retry_after_s
        self.rate_limit_patience_s = rate_limit_patience_s
        self._rng = rng if rng is not None else random.Random(seed)

    def delay(self, attempt: int, error: ProviderError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        Args:
            attempt: the number of the attempt that just failed, counting from 1.
            error: how it failed.
        """
        if attempt < 1:
            raise ValueError(f"RetryPolicy.delay: attempt counts from 1, got {attempt}")
        if not error.retryable or attempt >= self.max_attempts:
            return None
        server = error.retry_after_s
        if server is not None and server > 0:
            if self.max_retry_after_s is not None and server > self.max_retry_after_s:
                return None
            return server
        return self.backoff(attempt)

    def wait_out_rate_limit(self, in_a_row: int, error: ProviderError, call_age_s: float) -> float | None:
        """Seconds the call waits on its own before it re-enters the limiter after a 429 that does
        not count as an attempt, or None when this error must count (not a retryable 429, or the
        call has waited out 429s for longer than the patience).

        Args:
            in_a_row: how many 429s the call has waited out so far, this one included.
            error: how the attempt failed.
            call_age_s: seconds since the call's first attempt started.
        """
        if error.error_class != "rate_limit" or not error.retryable or call_age_s >= self.rate_limit_patience_s:
            return None
        if self.max_retry_after_s is not None and (error.retry_after_s or 0.0) > self.max_retry_after_s:
            return None
        # the limiter holds the lane for the server's delay; a second 429 in a row says that was
        # not enough, so the call backs off on its own as well
        return 0.0 if in_a_row <= 1 else self.backoff(in_a_row - 1)

    def backoff(self, attempt: int) -> float:
        """The jittered exponential delay after failed attempt number ``attempt``."""
        # 2 ** k overflows a float for huge k; the cap is reached long before
        plain = min(self.base * 2.0 ** min(attempt - 1, 64), self.cap)
        return plain * (1.0 - self.jitter * self._rng.random())


__all__ = ["SDK_RETRY_AFTER_MAX_S", "RetryPolicy"]
