"""One limiter per provider lane: concurrency, requests/min, tokens/min, pauses, adaptation.

A call asks `LaneLimiter.acquire(tokens)` before it is sent and gets a `Reservation`. Admission
needs all of: the lane is not paused (a 429's Retry-After), a concurrency slot under the adaptive
cap (AIMD: halve on a burst of 429s / 5xx, +1 per success back to the configured maximum), room in
the request bucket and room in the token bucket. The buckets follow aiolimiter's leaky bucket
(``aiolimiter/leakybucket.py``): a level that drains at ``limit / 60`` per second and admits an
amount while ``level + amount <= limit``. Unlike aiolimiter they can give back:
`Reservation.settle` refunds the part of the reserved tokens the call did not use (or charges more).

Waiters queue first-in first-out, so a large token reservation is never starved by small ones.
Only the head of the queue watches the clock, sleeping until the buckets or the pause allow it, and
is woken early (its sleep's cancel scope is cancelled) whenever capacity comes back. There is no
background task. All waiting goes through a `Clock`, so tests can run on virtual time.

Rate-limit headers re-sync the buckets (`LaneLimiter.observe`). The provider's level is
``limit - remaining`` as of the moment it counted the call, and every call it counted we have
counted too, so a reading can only *raise* our level to the provider's: that catches what we did
not see (another client on the key, a different token count) without counting the calls in flight
twice, whatever order they reached the provider in. A reading through `Reservation.observe` is
known to be no older than the call's admission, so it is first drained for that long; a bare
reading is taken as current, which errs on the safe side. Lowering the level on a reading is how
a client trips a limit (readings are stale, rounded, and blind to calls still on the wire), so it
never happens; refunds come from `Reservation.settle`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import anyio

from runner.engine.meter import RateMeter
from runner.types import RateLimitReading

_EPS = 1e-9


class Clock(Protocol):
    """Where the limiter reads the time and waits. Seconds, monotonic."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The event loop's own clock (what `anyio.sleep` and `anyio.fail_after` use)."""

    def time(self) -> float:
        try:
            return anyio.current_time()
        except RuntimeError:
            # outside the loop (a display thread asking for `stats`): asyncio's and uvloop's clocks
            # are both CLOCK_MONOTONIC
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@dataclass(frozen=True)
class LaneStats:
    """A snapshot of one lane for the dashboard. Levels are the used part of each bucket.

    ``paused_until`` is in the limiter clock's time; ``paused_for_s`` is what remains of it.
    Limits and levels are None while a limit is unknown (not configured, not yet learned).
    ``requests_last_min`` / ``tokens_last_min`` count what was admitted (tokens: as settled) in
    the last 60 s, whether or not the limit is known.
    """

    in_flight: int
    waiting: int
    concurrency_limit: int
    max_concurrency: int
    rpm_limit: int | None
    rpm_level: float | None
    tpm_limit: int | None
    tpm_level: float | None
    paused_until: float | None
    paused_for_s: float
    admitted: int
    n429: int
    n_server_errors: int
    retries: int
    requests_last_min: int = 0
    tokens_last_min: int = 0
    # what the head of the queue waits for while calls wait: "requests/min", "tokens/min",
    # "retry-after" or "concurrency" (the lane adds "spend cap"); None when nothing waits
    waiting_for: str | None = None


class _Bucket:
    """A leaky bucket whose limit may be unknown, learned, or lowered by the provider."""

    __slots__ = ("configured", "last", "level", "limit")

    def __init__(self, limit: int | None) -> None:
        self.configured = limit
        self.limit = limit
        self.level = 0.0
        self.last: float | None = None

    def leak(self, now: float) -> None:
        # an unknown limit has no known drain rate; the level then counts everything admitted
        if self.limit is not None and self.last is not None and self.level:
            self.level = max(0.0, self.level - (now - self.last) * self.limit / 60.0)
        self.last = now

    def delay(self, amount: float) -> float:
        if self.limit is None:
            return 0.0
        # a request larger than the whole bucket waits for an empty bucket instead of forever
        need = self.level + min(amount, self.limit) - self.limit
        return need * 60.0 / self.limit if need > _EPS else 0.0

    def resync(
        self,
        now: float,
        limit: int | None,
        remaining: int | None,
        reset_s: float | None,
        admitted_at: float | None,
    ) -> None:
        """Apply one reading: learn or lower the limit, raise the level to the provider's."""
        self.leak(now)
        before = self.limit
        if limit is not None and limit > 0:
            self.limit = limit if self.configured is None else min(self.configured, limit)
        if self.limit is None:
            return
        if before is None:
            # learned just now: everything admitted so far may still count, but at most a full bucket
            self.level = min(self.level, float(self.limit))
        if remaining is not None:
            server = float((limit or self.limit) - remaining)
        elif reset_s is not None:  # time to refill completely = level / drain rate
            server = min(reset_s * self.limit / 60.0, float(self.limit))
        else:
            return
        if admitted_at is not None:
            # the provider counted the call after we admitted it: the reading has drained since
            server -= max(0.0, now - admitted_at) * self.limit / 60.0
        self.level = max(self.level, server)


class _Waiter:
    __slots__ = ("dead", "event")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.dead = False


class Reservation:
    """Capacity held by one call: a concurrency slot, one request and its reserved tokens.

    `settle` charges the real token count and frees the slot; `release` frees the slot and keeps
    the reserved tokens charged (usage unknown). Both are idempotent. As a context manager the
    slot is released on exit.
    """

    __slots__ = ("_limiter", "_released", "admitted_at", "charged", "tokens")

    def __init__(self, limiter: LaneLimiter, tokens: int, admitted_at: float) -> None:
        self._limiter = limiter
        self.tokens = tokens
        self.charged = tokens
        self.admitted_at = admitted_at
        self._released = False

    def observe(self, reading: RateLimitReading) -> None:
        """Re-sync the lane from the headers of this call's response (knowing their age)."""
        self._limiter._observe(reading, self.admitted_at)

    def settle(self, actual_tokens: int) -> None:
        """Charge ``actual_tokens`` instead of what was reserved, then release the slot."""
        if actual_tokens < 0:
            raise ValueError(f"Reservation.settle: actual_tokens must be >= 0, got {actual_tokens}")
        delta, self.charged = actual_tokens - self.charged, actual_tokens
        if delta:
            self._limiter._adjust_tokens(delta)
        self.release()

    def release(self) -> None:
        """Free the concurrency slot (once); the tokens stay charged as they are."""
        if not self._released:
            self._released = True
            self._limiter._release()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class LaneLimiter:
    """Admission control for one provider lane (see the module docstring).

    Args:
        rpm: requests per minute, or None to learn it from ``x-ratelimit-limit-requests``.
        tpm: tokens per minute, or None to learn it from ``x-ratelimit-limit-tokens``.
        max_concurrency: the most calls in flight; the adaptive cap never exceeds it.
        clock: where time is read and waited on; the event loop's clock by default.
        decrease_factor: the concurrency cap is multiplied by this on a 429 / 5xx burst.
        decrease_cooldown_s: errors within this long of a decrease belong to the same burst.
        increase_per_success: added to the concurrency cap per successful call.
        default_pause_s: how long a 429 without Retry-After pauses the lane.
    """

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        max_concurrency: int,
        clock: Clock | None = None,
        decrease_factor: float = 0.5,
        decrease_cooldown_s: float = 1.0,
        increase_per_success: float = 1.0,
        default_pause_s: float = 1.0,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"LaneLimiter: {name} must be a positive integer or None, got {value}")
        if max_concurrency <= 0:
            raise ValueError(f"LaneLimiter: max_concurrency must be positive, got {max_concurrency}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"LaneLimiter: decrease_factor must be in (0, 1), got {decrease_factor}")
        self._clock: Clock = clock or LoopClock()
        self._requests = _Bucket(rpm)
        self._tokens = _Bucket(tpm)
        self.max_concurrency = max_concurrency
        self._cwnd = float(max_concurrency)
        self._decrease_factor = decrease_factor
        self._cooldown = decrease_cooldown_s
        self._increase = increase_per_success
        self._default_pause = default_pause_s
        self._last_decrease = -math.inf
        self._paused_until = -math.inf
        self._in_flight = 0
        self._waiting = 0
        self._queue: deque[_Waiter] = deque()
        self._head_scope: anyio.CancelScope | None = None
        self._admitted = self._n429 = self._n5xx = self._retries = 0
        self._requests_meter = RateMeter(60.0)
        self._tokens_meter = RateMeter(60.0)
        self._blocked_by: str | None = None  # the constraint the last admission check waited on

    async def acquire(self, tokens: int) -> Reservation:
        """Wait for the pause to end, a concurrency slot, one request and ``tokens`` tokens.

        ``tokens`` is what the call may use at most (prompt tokens plus output cap, as OpenAI
        counts admission). Cancelled while waiting, nothing stays reserved.
        """
        if tokens < 0:
            raise ValueError(f"LaneLimiter.acquire: tokens must be >= 0, got {tokens}")
        if not self._queue and self._admit_delay(tokens) == 0.0:
            return self._admit(tokens)
        waiter = _Waiter()
        self._queue.append(waiter)
        self._waiting += 1
        try:
            while True:
                if self._queue[0] is not waiter:
                    await waiter.event.wait()
                    continue
                delay = self._admit_delay(tokens)
                if delay == 0.0:
                    break
                await self._sleep_as_head(delay)
        except BaseException:
            waiter.dead = True
            self._waiting -= 1
            self._pass_head()
            raise
        self._queue.popleft()
        self._waiting -= 1
        reservation = self._admit(tokens)
        self._pass_head()
        return reservation

    def observe(self, reading: RateLimitReading) -> None:
        """Re-sync from any response's headers. Prefer `Reservation.observe` for the call's own."""
        self._observe(reading, None)

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        """A 429: pause the whole lane for Retry-After (or a default) and back off concurrency."""
        now = self._clock.time()
        self._n429 += 1
        pause = retry_after_s if retry_after_s is not None and retry_after_s > 0 else self._default_pause
        self._paused_until = max(self._paused_until, now + pause)
        self._decrease(now)

    def on_server_error(self) -> None:
        """A 5xx, overload or broken stream: back off concurrency (once per burst)."""
        self._n5xx += 1
        self._decrease(self._clock.time())

    def on_success(self) -> None:
        """A call succeeded: grow the concurrency cap back toward its maximum."""
        before = int(self._cwnd)
        self._cwnd = min(float(self.max_concurrency), self._cwnd + self._increase)
        if int(self._cwnd) > before:
            self._wake_head()

    def on_retry(self) -> None:
        """Count a retry for `stats` (the scheduler decides and waits; the lane only counts)."""
        self._retries += 1

    def stats(self) -> LaneStats:
        """A frozen snapshot of the lane now."""
        now = self._clock.time()
        self._requests.leak(now)
        self._tokens.leak(now)
        r, t = self._requests, self._tokens
        paused = self._paused_until > now
        return LaneStats(
            in_flight=self._in_flight,
            waiting=self._waiting,
            concurrency_limit=self._limit(),
            max_concurrency=self.max_concurrency,
            rpm_limit=r.limit,
            rpm_level=r.level if r.limit is not None else None,
            tpm_limit=t.limit,
            tpm_level=t.level if t.limit is not None else None,
            paused_until=self._paused_until if paused else None,
            paused_for_s=self._paused_until - now if paused else 0.0,
            admitted=self._admitted,
            n429=self._n429,
            n_server_errors=self._n5xx,
            retries=self._retries,
            requests_last_min=round(self._requests_meter.total(now)),
            tokens_last_min=max(0, round(self._tokens_meter.total(now))),
            waiting_for=(self._blocked_by or self._binding(now)) if self._waiting else None,
        )

    def _binding(self, now: float) -> str | None:
        """What holds the queue back now, when its head has not said (it is being handed on)."""
        if self._paused_until > now:
            return "retry-after"
        if self._in_flight >= self._limit():
            return "concurrency"
        if self._requests.delay(1) > 0:
            return "requests/min"
        return None

    # -- decisions: synchronous, no awaits -------------------------------------------------

    def _limit(self) -> int:
        return max(1, int(self._cwnd))

    def _admit_delay(self, tokens: int) -> float:
        """0.0 when a call of ``tokens`` may start now, else how long to wait (inf: until woken)."""
        now = self._clock.time()
        if self._paused_until > now:
            self._blocked_by = "retry-after"
            return self._paused_until - now
        if self._in_flight >= self._limit():
            self._blocked_by = "concurrency"
            return math.inf
        self._requests.leak(now)
        self._tokens.leak(now)
        requests, tokens_wait = self._requests.delay(1), self._tokens.delay(tokens)
        self._blocked_by = (
            None if not requests and not tokens_wait else "requests/min" if requests >= tokens_wait else "tokens/min"
        )
        return max(requests, tokens_wait)

    def _admit(self, tokens: int) -> Reservation:
        self._in_flight += 1
        self._admitted += 1
        self._requests.level += 1
        self._tokens.level += tokens
        now = self._clock.time()
        self._requests_meter.add(1, now)
        self._tokens_meter.add(tokens, now)
        return Reservation(self, tokens, now)

    def _release(self) -> None:
        self._in_flight -= 1
        self._wake_head()

    def _adjust_tokens(self, delta: int) -> None:
        now = self._clock.time()
        self._tokens.leak(now)
        self._tokens_meter.add(delta, now)
        self._tokens.level = max(0.0, self._tokens.level + delta)
        if delta < 0:
            self._wake_head()

    def _observe(self, reading: RateLimitReading, admitted_at: float | None) -> None:
        now = self._clock.time()
        self._requests.resync(
            now, reading.limit_requests, reading.remaining_requests, reading.reset_requests_s, admitted_at
        )
        self._tokens.resync(now, reading.limit_tokens, reading.remaining_tokens, reading.reset_tokens_s, admitted_at)
        # a learned or changed limit can shorten the head's wait as well as lengthen it
        self._wake_head()

    def _decrease(self, now: float) -> None:
        if now - self._last_decrease >= self._cooldown:
            self._cwnd = max(1.0, self._cwnd * self._decrease_factor)
            self._last_decrease = now

    # -- waiting -----------------------------------------------------------------------------

    async def _sleep_as_head(self, delay: float) -> None:
        with anyio.CancelScope() as scope:
            self._head_scope = scope
            try:
                if math.isinf(delay):
                    await anyio.sleep_forever()
                else:
                    await self._clock.sleep(delay)
            finally:
                self._head_scope = None

    def _wake_head(self) -> None:
        if self._head_scope is not None:
            self._head_scope.cancel()

    def _pass_head(self) -> None:
        """Drop dead waiters at the front; tell the new head (if any) it is its turn."""
        queue = self._queue
        while queue and queue[0].dead:
            queue.popleft()
        if queue:
            queue[0].event.set()


__all__ = ["Clock", "LaneLimiter", "LaneStats", "LoopClock", "Reservation"]
