"""A sliding-window counter: requests and tokens per minute for the limiter, tokens/s for the run."""

from __future__ import annotations

from collections import deque


class RateMeter:
    """A sliding-window counter: how much was added in the last ``window_s`` seconds.

    Additions are merged into ``buckets`` slots per window, so memory stays bounded however
    often `add` is called; counts are exact to one slot's width. The caller passes the time, so
    tests drive it with any clock.

    Args:
        window_s: width of the window in seconds (60 for per-minute counts, ~10 for a rate).
        buckets: slots per window; the count's resolution is ``window_s / buckets``.

    Example:
        >>> m = RateMeter(window_s=10.0)
        >>> m.add(500, now=100.0); m.add(500, now=104.0)
        >>> m.total(now=105.0), m.rate(now=105.0)
        (1000.0, 200.0)
    """

    def __init__(self, window_s: float = 60.0, *, buckets: int = 60) -> None:
        if window_s <= 0 or buckets <= 0:
            raise ValueError(f"RateMeter: window_s and buckets must be positive, got {window_s}, {buckets}")
        self.window_s = window_s
        self._buckets = buckets
        self._slot = window_s / buckets
        self._slots: deque[tuple[int, float]] = deque()  # (slot index, amount), oldest first
        self._sum = 0.0
        self._first: float | None = None

    def add(self, n: float = 1, now: float = 0.0) -> None:
        """Count ``n`` (requests, tokens, ...) at time ``now``."""
        if self._first is None:
            self._first = now
        index = int(now // self._slot)
        if self._slots and self._slots[-1][0] >= index:
            # same slot (or a clock that stepped back a little): merge into the newest slot
            last_index, amount = self._slots[-1]
            self._slots[-1] = (last_index, amount + n)
        else:
            self._slots.append((index, n))
        self._sum += n
        self._expire(now)

    def total(self, now: float) -> float:
        """Amount added in the window ending at ``now``."""
        self._expire(now)
        return self._sum

    def rate(self, now: float) -> float:
        """Amount per second over the window ending at ``now``.

        Before a full window has passed since the first addition, the sum is divided by the time
        elapsed so far (at least one slot), so the rate is right from the start of a run rather
        than ramping up over the first window.
        """
        total = self.total(now)
        if self._first is None or total == 0:
            return 0.0
        span = min(self.window_s, max(self._slot, now - self._first))
        return total / span

    def _expire(self, now: float) -> None:
        oldest_kept = int(now // self._slot) - self._buckets + 1
        while self._slots and self._slots[0][0] < oldest_kept:
            self._sum -= self._slots.popleft()[1]
        if not self._slots:
            self._sum = 0.0  # drop float drift once empty
