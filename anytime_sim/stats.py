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
        batch_requests: requests received inside batches (also in ``requests``).
        batch_input_tokens / batch_cached_input_tokens / batch_output_tokens: the part of the
            token counts above served inside batches (billed at batch prices).
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
    batch_requests: int = 0
    batch_input_tokens: int = 0
    batch_cached_input_tokens: int = 0
    batch_output_tokens: int = 0


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


class BatchTokens(msgspec.Struct, kw_only=True):
    """Tokens one key's batches were served of one model: what the provider bills at batch prices."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0  # at the model's batch price, where the simulator knows its price (xAI's)


class KeyBatches(msgspec.Struct, kw_only=True):
    """One API key's batches, as the provider counts them (the key is kept as a digest).

    Attributes:
        batches: batches created.
        requests: requests received in them.
        resubmitted: requests whose ``custom_id`` an earlier batch of the key already carried
            (a client that submits a batch twice shows here).
        succeeded / errored / expired: how the requests ended.
        models: tokens served per model.
    """

    batches: int = 0
    requests: int = 0
    resubmitted: int = 0
    succeeded: int = 0
    errored: int = 0
    expired: int = 0
    models: dict[str, BatchTokens] = msgspec.field(default_factory=dict)


class SimStats(msgspec.Struct, kw_only=True):
    """A snapshot of every model's and every key's counters."""

    models: dict[str, ModelStats] = msgspec.field(default_factory=dict)
    keys: dict[str, ModelStats] = msgspec.field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    batch_keys: dict[str, KeyBatches] = msgspec.field(default_factory=dict)

    def total(self, field: str) -> int:
        """The sum of one counter over all models, e.g. ``total("rate_limited")``; a counter only
        the batches keep (``batches``, ``resubmitted``, ``errored`` …) summed over every key's."""
        if field == "faults":
            return sum(sum(m.faults.values()) for m in self.models.values())
        if field in KeyBatches.__struct_fields__ and field not in ModelStats.__struct_fields__:
            return sum(getattr(k, field) for k in self.batch_keys.values())
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
