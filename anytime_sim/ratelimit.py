"""Per-key request and token buckets, and the rate-limit headers that describe them.

Buckets refill linearly at ``limit / 60`` per second, like OpenAI's and Anthropic's. Token
admission charges the prompt tokens plus the request's output cap (``providers.md`` §1.6); the
unused part of the cap is given back when the call ends, so a client that reserves and refunds the
same way never trips the limit. Keys are stored only as hashes.

The enforcement window (``window_s``) is how much of the per-minute limit a bucket holds: 60 s (the
default) lets a whole minute's limit go at once; a shorter window enforces the same per-minute
limit over shorter periods, as OpenAI documents it may ("60,000 requests/minute may be enforced as
1,000 requests/second"): with ``window_s=1`` at most a second's share, ``limit / 60``, is admitted at
once. A request larger than a window's share (but within the minute's limit) is admitted only into
a full window, and what it takes beyond the share is refilled before anything else fits. The
headers describe the per-minute limit whatever the window: ``limit`` is the per-minute limit and
``remaining`` is that limit less what the bucket has not refilled yet, so a client cannot read the
window from them; it learns it from 429s.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec


class Bucket:
    """A token bucket of ``limit`` per minute enforced over ``window_s`` seconds, full at start.

    It holds ``capacity = limit × window_s / 60`` and refills at ``limit / 60`` per second.
    """

    def __init__(self, limit: int, now: float, window_s: float = 60.0) -> None:
        self.limit = limit
        self.rate = limit / 60.0
        self.capacity = limit * min(window_s, 60.0) / 60.0
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_s(self, cost: float) -> float:
        """Seconds until ``cost`` fits (infinite if it never can)."""
        if cost > self.limit:
            return math.inf
        # more than a window's share waits for a full window (and leaves the level below zero)
        need = min(cost, self.capacity)
        return max(0.0, (need - self.level) / self.rate)

    def used(self) -> float:
        """What the bucket has yet to refill: the provider's count against the per-minute limit."""
        return self.capacity - self.level

    def reset_s(self) -> float:
        return max(0.0, self.used() / self.rate)


class LimitState(msgspec.Struct, frozen=True):
    """The limits of one key at one moment (None: that limit is off)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


class Admission(msgspec.Struct, frozen=True):
    ok: bool
    state: LimitState
    retry_after_s: float = 0.0
    reason: str = ""  # "requests" | "tokens" | "too_large" | "storm" (every request of the key refused)


def key_digest(api_key: str) -> str:
    """A short hash standing for an API key wherever the simulator has to remember one."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class RateLimiter:
    """The simulator's limits: one pair of buckets per API key, enforced over ``window_s`` seconds."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = 60.0,
    ) -> None:
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self.window_s = window_s
        self._keys: dict[str, tuple[Bucket | None, Bucket | None]] = {}

    def _buckets(self, api_key: str) -> tuple[Bucket | None, Bucket | None]:
        kid = key_digest(api_key)
        pair = self._keys.get(kid)
        if pair is None:
            now = self.clock()
            pair = (
                Bucket(self.rpm, now, self.window_s) if self.rpm else None,
                Bucket(self.tpm, now, self.window_s) if self.tpm else None,
            )
            self._keys[kid] = pair
        now = self.clock()
        for bucket in pair:
            if bucket is not None:
                bucket.refill(now)
        return pair

    def admit(self, api_key: str, token_cost: int) -> Admission:
        """Take one request and ``token_cost`` tokens, or say how long to wait."""
        requests, tokens = self._buckets(api_key)
        wait_r = requests.wait_s(1) if requests else 0.0
        wait_t = tokens.wait_s(token_cost) if tokens else 0.0
        if math.isinf(wait_t):
            return Admission(ok=False, state=self._state(requests, tokens), retry_after_s=0.0, reason="too_large")
        if wait_r > 0 or wait_t > 0:
            reason = "requests" if wait_r >= wait_t else "tokens"
            return Admission(
                ok=False,
                state=self._state(requests, tokens),
                retry_after_s=max(wait_r, wait_t),
                reason=reason,
            )
        if requests:
            requests.level -= 1
        if tokens:
            tokens.level -= token_cost
        return Admission(ok=True, state=self._state(requests, tokens))

    def state(self, api_key: str) -> LimitState:
        """The key's limits at this moment, as its headers would show them."""
        return self._state(*self._buckets(api_key))

    def refund(self, api_key: str, unused_tokens: int, requests: int = 0) -> None:
        """Give back the part of an admitted request's charge it did not use."""
        request_bucket, tokens = self._buckets(api_key)
        if tokens is not None and unused_tokens > 0:
            tokens.level = min(tokens.capacity, tokens.level + unused_tokens)
        if request_bucket is not None and requests > 0:
            request_bucket.level = min(request_bucket.capacity, request_bucket.level + requests)

    @staticmethod
    def _state(requests: Bucket | None, tokens: Bucket | None) -> LimitState:
        return LimitState(
            limit_requests=requests.limit if requests else None,
            remaining_requests=max(0, math.floor(requests.limit - requests.used())) if requests else None,
            reset_requests_s=requests.reset_s() if requests else None,
            limit_tokens=tokens.limit if tokens else None,
            remaining_tokens=max(0, math.floor(tokens.limit - tokens.used())) if tokens else None,
            reset_tokens_s=tokens.reset_s() if tokens else None,
        )


def go_duration(seconds: float) -> str:
    """Seconds as OpenAI writes resets: ``120ms``, ``1.52s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1.0:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    text = f"{secs:.2f}".rstrip("0").rstrip(".") + "s"
    if hours >= 1:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes >= 1:
        return f"{int(minutes)}m{text}"
    return text


def openai_headers(state: LimitState) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        limit = getattr(state, f"limit_{kind}")
        if limit is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(getattr(state, f"remaining_{kind}"))
        headers[f"x-ratelimit-reset-{kind}"] = go_duration(getattr(state, f"reset_{kind}_s"))
    return headers


def rfc3339_in(seconds: float, now: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def anthropic_headers(state: LimitState) -> dict[str, str]:
    """``anthropic-ratelimit-*``; the one token bucket stands for input, output and total."""
    headers: dict[str, str] = {}
    if state.limit_requests is not None:
        headers["anthropic-ratelimit-requests-limit"] = str(state.limit_requests)
        headers["anthropic-ratelimit-requests-remaining"] = str(state.remaining_requests)
        headers["anthropic-ratelimit-requests-reset"] = rfc3339_in(state.reset_requests_s or 0.0)
    if state.limit_tokens is not None:
        for group in ("tokens", "input-tokens", "output-tokens"):
            headers[f"anthropic-ratelimit-{group}-limit"] = str(state.limit_tokens)
            headers[f"anthropic-ratelimit-{group}-remaining"] = str(state.remaining_tokens)
            headers[f"anthropic-ratelimit-{group}-reset"] = rfc3339_in(state.reset_tokens_s or 0.0)
    return headers


def retry_headers(retry_after_s: float) -> dict[str, str]:
    """``retry-after`` in whole seconds (rounded up) and the precise ``retry-after-ms``."""
    return {
        "retry-after": str(max(1, math.ceil(retry_after_s))),
        "retry-after-ms": str(max(1, math.ceil(retry_after_s * 1000))),
    }
