"""The simulator's counters, per model: what a test or benchmark checks the client against."""

from __future__ import annotations

import msgspec


class ModelStats(msgspec.Struct, kw_only=True):
    """Counters of one simulated model.

    Attributes:
        requests: requests received for the model (429s and failed ones included).
        input_tokens: prompt tokens billed (requests that got a 200).
        cached_input_tokens: the part of ``input_tokens`` reported as served from a prompt cache.
        output_tokens: output tokens served, reasoning included (sent before any disconnect).
        reasoning_tokens: the reasoning part of ``output_tokens``.
        rate_limited: 429 answers.
        faults: injected faults by kind.
        completed: streams (or bodies) sent to the end.
        disconnected: calls that ended early (client gone, or a fault cut them).
    """

    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    rate_limited: int = 0
    faults: dict[str, int] = msgspec.field(default_factory=dict)
    completed: int = 0
    disconnected: int = 0


class SimStats(msgspec.Struct, kw_only=True):
    """A snapshot of every model's counters."""

    models: dict[str, ModelStats] = msgspec.field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0

    def total(self, field: str) -> int:
        """The sum of one counter over all models, e.g. ``total("rate_limited")``."""
        if field == "faults":
            return sum(sum(m.faults.values()) for m in self.models.values())
        return sum(getattr(m, field) for m in self.models.values())
