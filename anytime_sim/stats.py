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
    batch_requests: int = 0
    batch_input_tokens: int = 0
    batch_cached_input_tokens: int = 0
    batch_output_tokens: int = 0


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
    """A snapshot of every model's counters."""

    models: dict[str, ModelStats] = msgspec.field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    batch_keys: dict[str, KeyBatches] = msgspec.field(default_factory=dict)

    def total(self, field: str) -> int:
        """The sum of one counter over all models, e.g. ``total("rate_limited")``."""
        if field == "faults":
            return sum(sum(m.faults.values()) for m in self.models.values())
        if field in KeyBatches.__struct_fields__:
            return sum(getattr(k, field) for k in self.batch_keys.values())
        return sum(getattr(m, field) for m in self.models.values())
