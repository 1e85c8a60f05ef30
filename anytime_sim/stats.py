"""The simulator's counters, per model and per API key: what a test or benchmark checks the client
against. Keys are only ever stored as their digest (`anytime_sim.ratelimit.key_digest`)."""

from __future__ import annotations

import msgspec


class ModelStats(msgspec.Struct, kw_only=True):
    """Counters of one simulated model (`SimStats.models`) or of one API key (`SimStats.keys`).

    Attributes:
        requests: requests received (429s and failed ones included).
        input_tokens: prompt tokens billed (requests that got a 200).
        cached_input_tokens: the part of ``input_tokens`` reported as served from a prompt cache.
        output_tokens: output tokens served, reasoning included (sent before any disconnect).
        reasoning_tokens: the reasoning part of ``output_tokens``.
        rate_limited: 429 answers (real, injected, or inside a storm).
        faults: injected faults by kind, counted when they strike (a mid-stream fault planned past
            the point where the client left never strikes).
        completed: streams (or bodies) sent to the end.
        disconnected: calls that ended early (client gone, or a fault cut them).
        usage_reports: responses that sent their final usage (see `UsageReport`).
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
    usage_reports: int = 0


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """The final usage one response sent, as the client's normalised `Usage` would read it.

    A client that cut the stream first never reads it: joining these to the client's records by
    ``request_id`` tells the usage a client received from the usage it walked away from.

    Attributes:
        request_id: the response's request-id header (unique per request).
        key: the digest of the API key.
        model: the simulated model.
        input_tokens: prompt tokens, cached and cache-write parts included.
        cached_input_tokens: the part read from a prompt cache.
        cache_write_input_tokens: the part written to a prompt cache (Anthropic).
        output_tokens: output tokens, reasoning included.
        reasoning_tokens: the reasoning part of ``output_tokens``.
    """

    request_id: str
    key: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    reasoning_tokens: int


class SimStats(msgspec.Struct, kw_only=True):
    """A snapshot of every model's and every key's counters."""

    models: dict[str, ModelStats] = msgspec.field(default_factory=dict)
    keys: dict[str, ModelStats] = msgspec.field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0

    def total(self, field: str) -> int:
        """The sum of one counter over all models, e.g. ``total("rate_limited")``."""
        if field == "faults":
            return sum(sum(m.faults.values()) for m in self.models.values())
        return sum(getattr(m, field) for m in self.models.values())


class Tally:
    """Where one request's counts go: its model's counters and its key's, always together."""

    __slots__ = ("counters",)

    def __init__(self, *counters: ModelStats) -> None:
        self.counters = counters

    def add(self, field: str, amount: int = 1) -> None:
        """Add ``amount`` to one integer counter of every set."""
        for c in self.counters:
            setattr(c, field, getattr(c, field) + amount)

    def fault(self, kind: str) -> None:
        """Count one injected fault of ``kind``."""
        for c in self.counters:
            c.faults[kind] = c.faults.get(kind, 0) + 1
