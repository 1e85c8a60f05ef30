"""What a response will serve under its output cap, and how fast: pure arithmetic on a `Generation`."""

from __future__ import annotations

import time

import msgspec

from anytime_sim.trace import Generation


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What one response will serve under its output cap.

    Attributes:
        reasoning_tokens: reasoning tokens generated (billed), whether shown or not.
        content_tokens: content tokens generated.
        finish: ``stop`` or ``length``.
    """

    reasoning_tokens: int
    content_tokens: int
    finish: str

    @property
    def output_tokens(self) -> int:
        return self.reasoning_tokens + self.content_tokens


def plan(generation: Generation, cap: int | None) -> Plan:
    total_r, total_c = len(generation.reasoning), len(generation.content)
    cap = total_r + total_c if cap is None else max(cap, 0)
    r = min(total_r, cap)
    c = min(total_c, cap - r)
    return Plan(reasoning_tokens=r, content_tokens=c, finish="stop" if r + c == total_r + total_c else "length")


class Pacer:
    """Sleeps so that tokens go out at the model's speed, scaled by ``time_scale``."""

    def __init__(self, ttft_s: float, tokens_per_s: float, time_scale: float) -> None:
        self.scale = time_scale
        self.ttft = ttft_s * time_scale
        self.per_token = time_scale / tokens_per_s
        self.start = time.monotonic()

    def delay(self, tokens_done: int) -> float:
        """Seconds until ``tokens_done`` tokens are due (<= 0: already due)."""
        if self.scale <= 0:
            return 0.0
        return self.start + self.ttft + tokens_done * self.per_token - time.monotonic()

    def total_s(self, tokens: int) -> float:
        return self.ttft + tokens * self.per_token
