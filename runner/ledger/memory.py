"""A record sink in memory, for benchmarks and tests that exercise a lane without a ledger file.

It keeps (or only counts) what a lane appends; tracking a streaming call's spend is a no-op,
since nothing here survives a crash anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from runner.ledger.records import Attempt, InFlight, Record


class _NoTracking:
    def close(self) -> None:
        """Nothing was sampled: nothing to stop."""


class MemorySink:
    """Appended records, in order (``keep=False``: only their count, for benchmarks)."""

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.records: list[Record] = []
        self.count = 0

    def append(self, record: Record) -> None:
        self.count += 1
        if self.keep:
            self.records.append(record)

    def track(self, snapshot: Callable[[], InFlight], *, recorded_usd: float = 0.0) -> _NoTracking:
        return _NoTracking()

    async def append_durable(self, record: Record) -> None:
        """Memory is as durable as it gets here."""
        self.append(record)

    def attempts(self) -> list[Attempt]:
        """The `Attempt` records kept so far."""
        return [r for r in self.records if isinstance(r, Attempt)]
