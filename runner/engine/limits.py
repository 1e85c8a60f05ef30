"""One limiter per provider lane: concurrency, requests/min, tokens/min, pauses, adaptation.

A call asks `LaneLimiter.acquire(tokens)` before it is sent and gets a `Reservation`. Admission
needs all of: the lane is not paused (a 429's Retry-After), a concurrency slot under the adaptive
cap (AIMD: halve on a burst of 429s / 5xx, +1 per success back to the configured maximum), room in
the request bucket and room in the token bucket. The buckets follow aiolimiter's leaky bucket
(``aiolimiter/leakybucket.py``): a level that drains at ``limit / 60`` per second and admits an
amount while ``level + amount <= burst``. Unlike aiolimiter they can give back:
`Reservation.settle` refunds the part of the reserved tokens the call did not use (or charges more).

Pacing within the minute. A provider may enforce a per-minute limit over shorter windows (OpenAI
documents that 60,000 requests/minute may be enforced as 1,000 requests/second), so a bucket never
lets a whole minute's limit go at once: it holds ``burst = limit × burst_s / 60``, by default half
a second's share. Half, because a window of one second holds a second's share and the other half is
room for what separates our count from the provider's (the time between admission and arrival,
refunds settled at different moments). A call larger than the burst waits for an empty bucket,
and is charged `GUARD_S` seconds of the limit more (a call that fills a window on its own leaves no
such room otherwise); the long-run rate is the limit, less that guard for such calls. A 429 on a
lane whose limits are known shows a window tighter than the burst assumed: ``burst_s`` is halved,
once per burst of 429s, down to `MIN_BURST_S`; after `WIDEN_AFTER_S` without a 429 it doubles back
toward where it started (a 429 from another client on the key must not narrow it for good: a short
burst gives up the rate whenever the loop is late by more than it). Against a provider that does
allow a minute at once, this gives up only the head start of the first burst; the rate is the same.

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
DEFAULT_BURST_S = 0.5  # half a second's share of each limit at once (see the module docstring)
MIN_BURST_S = 1.0 / 16  # a burst this short already spaces calls evenly at all but the largest limits
WIDEN_AFTER_S = 60.0  # a narrowed burst doubles back toward where it started after this long without a 429
# a call larger than the burst is charged this many seconds of the limit more, which drain unused:
# calls that fill a provider's window on their own are spaced by at least this much more than the
# rate, or the smallest difference in when two of them reach the provider would trip it
GUARD_S = 0.02

# why the head of the queue waits, as `LaneStats.waiting_for` reports it
WAIT_RETRY_AFTER = "retry-after"
WAIT_CONCURRENCY = "concurrency"
WAIT_REQUESTS = "requests/min"
WAIT_TOKENS = "tokens/min"


class Clock(Protocol):
    """Where the limiter reads the time and waits. Seconds, monotonic."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class Capacity(Protocol):
    """What an admitted call holds of its lane's limits until it settles: a `Reservation` of this
    process's limiter, or in a worker process a lease from the coordinator's (`runner.cluster`)."""

    def settle(self, actual_tokens: int) -> None: ...

    def cancel(self) -> None: ...


class Limiter(Protocol):
    """What a lane asks of its limits: this process's `LaneLimiter`, or in a worker process a proxy
    that leases capacity from the coordinator's limiter for the key (`runner.cluster.remote`)."""

    async def acquire(self, tokens: int) -> Capacity: ...

    def observe(self, reading: RateLimitReading) -> None: ...

    def on_rate_limited(self, retry_after_s: float | None) -> None: ...

    def on_server_error(self) -> None: ...

    def on_success(self) -> None: ...

    def stats(self) -> LaneStats: ...


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

    ``concurrency_limit`` is how many calls are allowed in flight now, never fewer than
    ``in_flight``: when AIMD lowers the cap (``concurrency_cap``), calls already running go on and
    their slots are retired as they end, and no call starts until ``in_flight`` is under the cap.
    ``paused_until`` is in the limiter clock's time; ``paused_for_s`` is what remains of it.
    Limits and levels are None while a limit is unknown (not configured, not yet learned).
    ``requests_last_min`` / ``tokens_last_min`` count what was admitted (tokens: as settled) in
    the last 60 s, whether or not the limit is known. ``waiting_for`` is why calls wait for the
    lane right now: ``"retry-after"`` (a 429's pause), ``"concurrency"``, ``"requests/min"``,
    ``"tokens/min"`` (the limiter's queue, as its head was told) or ``"spend cap"`` (the lane
    waits for calls in flight to settle before the next fits the cap; set by `Lane.stats`);
    None when nothing waits. ``burst_s`` is the seconds of each limit the buckets let go at once.
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
    waiting_for: str | None = None
    concurrency_cap: int = 0
    burst_s: float = DEFAULT_BURST_S


class _Bucket:
    """A leaky bucket whose limit may be unknown, learned, or lowered by the provider.

    ``limit`` is per minute; the bucket holds ``limit × burst_s / 60`` (the lane's burst).
    """

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

    def delay(self, amount: float, burst_s: float) -> float:
        if self.limit is None:
            return 0.0
        burst = self.limit * burst_s / 60.0
        # a request larger than the whole bucket waits for an empty bucket instead of forever
        need = self.level + min(amount, burst) - burst
        return need * 60.0 / self.limit if need > _EPS else 0.0

    def charge(self, amount: float, burst_s: float) -> None:
        """Count an admitted call (with the guard when it is larger than the burst)."""
        self.level += amount
        if self.limit is not None and amount > self.limit * burst_s / 60.0:
            self.level += self.limit * GUARD_S / 60.0

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
    __slots__ = ("dead", "event", "tokens")

    def __init__(self, tokens: int) -> None:
        self.event = anyio.Event()
        self.dead = False
        self.tokens = tokens


class Reservation:
    """Capacity held by one call: a concurrency slot, one request and its reserved tokens.

    `settle` charges the real token count and frees the slot; `release` frees the slot and keeps
    the reserved tokens charged (usage unknown); `cancel` gives everything back (the call was never
    sent). All are idempotent. As a context manager the slot is released on exit.
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

    def cancel(self) -> None:
        """The call will not be sent after all: give back its request, its tokens and its slot."""
        if not self._released:
            self._limiter._unadmit(self.charged)
            self.charged = 0
            self.release()

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
        burst_s: seconds of each per-minute limit that may go at once (60: a whole minute's);
            halved on a 429 while the limits are known, down to `MIN_BURST_S`, and doubled back
            after `WIDEN_AFTER_S` without one.
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
        burst_s: float = DEFAULT_BURST_S,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"LaneLimiter: {name} must be a positive integer or None, got {value}")
        if max_concurrency <= 0:
            raise ValueError(f"LaneLimiter: max_concurrency must be positive, got {max_concurrency}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"LaneLimiter: decrease_factor must be in (0, 1), got {decrease_factor}")
        if not MIN_BURST_S <= burst_s <= 60:
            raise ValueError(f"LaneLimiter: burst_s must be in [{MIN_BURST_S}, 60] seconds, got {burst_s}")
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
        self.burst_s = self._widest_burst_s = burst_s
        self._last_narrowing = -math.inf
        self._paused_until = -math.inf
        self._in_flight = 0
        self._waiting = 0
        self._queue: deque[_Waiter] = deque()
        self._head_scope: anyio.CancelScope | None = None
        self._head_waits_for: str | None = None
        self._admitted = self._n429 = self._n5xx = self._retries = 0
        self._requests_meter = RateMeter(60.0)
        self._tokens_meter = RateMeter(60.0)

    async def acquire(self, tokens: int) -> Reservation:
        """Wait for the pause to end, a concurrency slot, one request and ``tokens`` tokens.

        ``tokens`` is what the call may use at most (prompt tokens plus output cap, as OpenAI
        counts admission). Cancelled while waiting, nothing stays reserved.
        """
        if tokens < 0:
            raise ValueError(f"LaneLimiter.acquire: tokens must be >= 0, got {tokens}")
        if not self._queue and self._admit_delay(tokens)[0] == 0.0:
            return self._admit(tokens)
        waiter = _Waiter(tokens)
        self._queue.append(waiter)
        self._waiting += 1
        try:
            while True:
                if self._queue[0] is not waiter:
                    await waiter.event.wait()
                    continue
                delay, reason = self._admit_delay(tokens)
                if delay == 0.0:
                    break
                await self._sleep_as_head(delay, reason)
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

    def try_acquire(self, tokens: int) -> Reservation | None:
        """`acquire` without waiting: the reservation when the call may start now (nobody queued
        ahead of it), else None. The coordinator of worker processes answers most leases so."""
        if tokens < 0:
            raise ValueError(f"LaneLimiter.try_acquire: tokens must be >= 0, got {tokens}")
        if not self._queue and self._admit_delay(tokens)[0] == 0.0:
            return self._admit(tokens)
        return None

    def observe(self, reading: RateLimitReading) -> None:
        """Re-sync from any response's headers. Prefer `Reservation.observe` for the call's own."""
        self._observe(reading, None)

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        """A 429: pause the whole lane for Retry-After (or a default), back off concurrency, and
        narrow the burst when the limits are known (the provider's window is tighter than it)."""
        now = self._clock.time()
        self._n429 += 1
        pause = retry_after_s if retry_after_s is not None and retry_after_s > 0 else self._default_pause
        self._paused_until = max(self._paused_until, now + pause)
        self._decrease(now)
        self._narrow_burst(now)

    def on_server_error(self) -> None:
        """A 5xx, overload or broken stream: back off concurrency (once per burst)."""
        self._n5xx += 1
        self._decrease(self._clock.time())

    def on_success(self) -> None:
        """A call succeeded: grow the concurrency cap back toward its maximum (and a narrowed burst
        back toward its width, once a while has passed without a 429)."""
        if self.burst_s < self._widest_burst_s:
            self._widen_burst(self._clock.time())
        before = int(self._cwnd)
        self._cwnd = min(float(self.max_concurrency), self._cwnd + self._increase)
        if int(self._cwnd) > before:
            self._wake_head(WAIT_CONCURRENCY)

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
            concurrency_limit=max(self._limit(), self._in_flight),
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
            waiting_for=self._waiting_for(),
            concurrency_cap=self._limit(),
            burst_s=self.burst_s,
        )

    # -- decisions: synchronous, no awaits -------------------------------------------------

    def _limit(self) -> int:
        return max(1, int(self._cwnd))

    def _admit_delay(self, tokens: int) -> tuple[float, str | None]:
        """(0.0, None) when a call of ``tokens`` may start now, else how long to wait (inf: until
        woken) and what for."""
        now = self._clock.time()
        if self._paused_until > now:
            return self._paused_until - now, WAIT_RETRY_AFTER
        if self._in_flight >= self._limit():
            return math.inf, WAIT_CONCURRENCY
        self._requests.leak(now)
        self._tokens.leak(now)
        for_requests = self._requests.delay(1, self.burst_s)
        for_tokens = self._tokens.delay(tokens, self.burst_s)
        if for_requests == for_tokens == 0.0:
            return 0.0, None
        if for_requests >= for_tokens:
            return for_requests, WAIT_REQUESTS
        return for_tokens, WAIT_TOKENS

    def _waiting_for(self) -> str | None:
        """What the head of the queue waits for now (None: no queue, or the head may go)."""
        head = next((w for w in self._queue if not w.dead), None)
        return None if head is None else self._admit_delay(head.tokens)[1]

    def _admit(self, tokens: int) -> Reservation:
        self._in_flight += 1
        self._admitted += 1
        self._requests.charge(1, self.burst_s)
        self._tokens.charge(tokens, self.burst_s)
        now = self._clock.time()
        self._requests_meter.add(1, now)
        self._tokens_meter.add(tokens, now)
        return Reservation(self, tokens, now)

    def _release(self) -> None:
        self._in_flight -= 1
        self._wake_head(WAIT_CONCURRENCY)

    def _unadmit(self, tokens: int) -> None:
        """Take back an admission whose call was never sent (its slot is released separately)."""
        now = self._clock.time()
        self._admitted -= 1
        for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
            bucket.leak(now)
            bucket.level = max(0.0, bucket.level - amount)
        self._requests_meter.add(-1, now)
        self._tokens_meter.add(-tokens, now)

    def _adjust_tokens(self, delta: int) -> None:
        now = self._clock.time()
        self._tokens.leak(now)
        self._tokens_meter.add(delta, now)
        self._tokens.level = max(0.0, self._tokens.level + delta)
        if delta < 0:
            self._wake_head(WAIT_TOKENS)

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

    def _narrow_burst(self, now: float) -> None:
        # with no known limit there is no bucket to narrow: the pause and AIMD are all there is
        known = self._requests.limit is not None or self._tokens.limit is not None
        if known and now - self._last_narrowing >= self._cooldown:
            self.burst_s = max(MIN_BURST_S, self.burst_s / 2)
            self._last_narrowing = now

    def _widen_burst(self, now: float) -> None:
        if now - self._last_narrowing >= WIDEN_AFTER_S:
            self.burst_s = min(self._widest_burst_s, self.burst_s * 2)
            self._last_narrowing = now  # the next doubling waits as long again
            self._wake_head(WAIT_REQUESTS)
            self._wake_head(WAIT_TOKENS)

    # -- waiting -----------------------------------------------------------------------------

    async def _sleep_as_head(self, delay: float, reason: str | None) -> None:
        with anyio.CancelScope() as scope:
            self._head_scope, self._head_waits_for = scope, reason
            try:
                if math.isinf(delay):
                    await anyio.sleep_forever()
                else:
                    await self._clock.sleep(delay)
            finally:
                self._head_scope = None

    def _wake_head(self, freed: str | None = None) -> None:
        """Wake the head to look again: always, or only if it waits for what was ``freed`` (a
        slot freed while the head waits for the rate cannot shorten its wait; waking it costs)."""
        if self._head_scope is not None and freed in (None, self._head_waits_for):
            self._head_scope.cancel()

    def _pass_head(self) -> None:
        """Drop dead waiters at the front; tell the new head (if any) it is its turn."""
        queue = self._queue
        while queue and queue[0].dead:
            queue.popleft()
        if queue:
            queue[0].event.set()


__all__ = [
    "DEFAULT_BURST_S",
    "GUARD_S",
    "MIN_BURST_S",
    "WAIT_CONCURRENCY",
    "WAIT_REQUESTS",
    "WAIT_RETRY_AFTER",
    "WAIT_TOKENS",
    "WIDEN_AFTER_S",
    "Capacity",
    "Clock",
    "LaneLimiter",
    "LaneStats",
    "Limiter",
    "LoopClock",
    "Reservation",
]
