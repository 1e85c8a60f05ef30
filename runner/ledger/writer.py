"""The run ledger: append-only JSON Lines of `runner.records`, crash-safe, one writer.

Writing: `append` encodes the record and queues it (no await, so it can run in a `finally` of
a cancelled task); a flusher task writes queued records in batches and fsyncs each batch, in a
worker thread so the event loop never blocks on the disk. A record is durable once the batch
holding it is fsynced; `flush()` waits for that.

Crashes: a `kill -9` can leave at most one partial line at the end of the file (a batch is
written with one `write` call, in order). Opening the ledger cuts that torn tail off and appends a
`Note(kind="torn_line")`, so every remaining line is a whole record. Readers also skip a torn
final line, so a ledger being written can be read at any time (pandas, DuckDB, jq read it as is).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Generic, TypedDict, TypeVar, Unpack

import anyio

from runner.errors import LedgerError
from runner.ledger.reader import ledger_path
from runner.ledger.records import InFlight, Note, Record, encode_line_into
from runner.ledger.recovery import interrupted_in_flight, recover

R = TypeVar("R")


class BatchQueue(Generic[R]):
    """Appended records, encoded into a queue without blocking and handed on in batches, in order,
    by a flusher task; a record is durable once its batch is. Subclasses say how a record is
    encoded (`_encode_into`), when a batch is full (`_full`) and where batches go (`_write_batch`,
    `_write_sync`, `_close`): the ledger (`BatchWriter`) and the transcripts
    (`runner.ledger.transcript_writer.TranscriptWriter`) share this."""

    def __init__(self, name: str, *, max_delay_s: float) -> None:
        self.name = name
        # encoded records waiting for the next batch, and how many they are
        self._queue = bytearray()
        self._queued = 0
        self._max_delay_s = max_delay_s
        self._wake = anyio.Event()
        self._appended = 0
        self._durable = 0
        self._durable_changed = anyio.Event()
        self._closed = False
        self._failed: LedgerError | None = None

    def _encode_into(self, record: R, buffer: bytearray) -> None:
        """Append ``record`` to ``buffer`` as one line."""
        raise NotImplementedError

    def _full(self) -> bool:
        """Whether the queue should go out now, without waiting for ``max_delay_s``."""
        raise NotImplementedError

    async def _write_batch(self, batch: bytearray, count: int) -> None:
        """Make one batch durable (the flusher awaits it, shielded from cancellation).

        Raises:
            LedgerError: the batch could not be made durable.
        """
        raise NotImplementedError

    def _write_sync(self, batch: bytearray, count: int) -> None:
        """Make one batch durable now, blocking (closing, or a last record from a signal handler)."""
        raise NotImplementedError

    def _before_batch(self) -> None:
        """Each time the flusher wakes, before it takes a batch."""

    def append_encoded(self, lines: bytes, count: int) -> None:
        """Queue ``count`` records already encoded as whole lines (a worker's batch, in its order)."""
        if self._closed:
            raise LedgerError(f"{self.name}: append after close")
        self._queue += lines
        self._queued += count
        self._appended += count
        if self._full():
            self._wake.set()

    def append(self, record: R) -> None:
        """Queue a record (never blocks). It is durable once the batch holding it is."""
        if self._closed:
            raise LedgerError(f"{self.name}: append after close")
        self._encode_into(record, self._queue)
        self._queued += 1
        self._appended += 1
        if self._full():
            self._wake.set()

    async def flush(self) -> None:
        """Wait until every record appended so far is durable.

        Raises:
            LedgerError: a batch could not be written (for the ledger the run must stop: spend
                would go unrecorded).
        """
        target = self._appended
        while self._durable < target:
            if self._failed is not None:
                raise self._failed
            self._wake.set()
            await self._durable_changed.wait()

    async def run_flusher(self) -> None:
        """Write batches until cancelled (then the owner calls `close_sync`)."""
        while True:
            with anyio.move_on_after(self._max_delay_s):
                await self._wake.wait()
            self._wake = anyio.Event()
            self._before_batch()
            if not self._queued:
                continue
            batch, count = self._take()
            try:
                # shielded: a cancel landing while the batch is on its way would drop a batch
                # already taken off the queue
                with anyio.CancelScope(shield=True):
                    await self._write_batch(batch, count)
            except LedgerError as exc:
                self._failed = exc
                self._durable_changed.set()
                raise
            self._durable += count
            self._durable_changed.set()
            self._durable_changed = anyio.Event()

    def _take(self) -> tuple[bytearray, int]:
        batch, count = self._queue, self._queued
        self._queue, self._queued = bytearray(), 0
        return batch, count

    def close_sync(self) -> None:
        """Write what is queued and close; safe to call from any shutdown path, twice."""
        if self._closed:
            return
        if self._queued:
            batch, count = self._take()
            self._write_sync(batch, count)
            self._durable += count
        self._closed = True
        self._close()

    def _close(self) -> None:
        """Let go of where batches go (after the last one)."""


class BatchWriter(BatchQueue[Record]):
    """Batches appended ledger records and hands each batch on, in order: to the file
    (`LedgerWriter`) or, in a worker process, to the coordinator that writes the run's one ledger
    (`runner.cluster.remote.WorkerLedger`). It also samples the spend of running calls."""

    def __init__(self, name: str, *, batch_records: int = 512, max_delay_s: float = 0.05) -> None:
        super().__init__(name, max_delay_s=max_delay_s)
        self._batch_records = batch_records
        self._tracked: set[Tracked] = set()
        self._last_sample = -1.0e9
        self.records_written = 0

    def _encode_into(self, record: Record, buffer: bytearray) -> None:
        encode_line_into(record, buffer)

    def _full(self) -> bool:
        return self._queued >= self._batch_records

    def _before_batch(self) -> None:
        # sampling every running call has a cost (thousands may stream at once): 4 times a second
        if self._tracked and time.monotonic() - self._last_sample >= 0.25:
            self._last_sample = time.monotonic()
            self._sample_in_flight()

    def track(
        self,
        snapshot: Callable[[], InFlight],
        *,
        recorded_usd: float = 0.0,
        min_usd: float = 0.0002,
        every_s: float = 1.0,
    ) -> Tracked:
        """Record a running call's spend so far, so a crash cannot lose it.

        The flusher calls ``snapshot()`` (on the event loop) before each batch and appends an
        `InFlight` record when the spend grew by ``min_usd`` or ``every_s`` passed with any growth
        beyond ``recorded_usd`` (what an earlier record of the call already holds). The caller
        closes the handle and appends the final `Attempt` when the call ends.
        """
        handle = Tracked(self, snapshot, min_usd, every_s)
        handle.last_usd = recorded_usd
        self._tracked.add(handle)
        return handle

    async def append_durable(self, record: Record) -> None:
        """Append a record and wait until it is on disk (with everything appended before it).

        A call's intent goes through here before its request is sent, so that a `kill -9` at any
        moment leaves every request that may have reached a provider on record. Waiting for the
        queue to drain is also the ledger's back-pressure: no new attempt starts while the writer
        is behind.
        """
        self.append(record)
        await self.flush()

    def _sample_in_flight(self) -> None:
        now = time.monotonic()
        for handle in list(self._tracked):
            record = handle.snapshot()
            grown = record.usd - handle.last_usd
            if grown > 0 and (grown >= handle.min_usd or now - handle.last_at >= handle.every_s):
                handle.last_usd, handle.last_at = record.usd, now
                self.append(record)

    def append_sync(self, record: Record) -> None:
        """Append and fsync now, blocking the caller: for a last record when no flush can be awaited
        (a signal handler, a cancelled scope). Records queued before it are written first, in order."""
        self.append(record)
        batch, count = self._take()
        self._write_sync(batch, count)
        self._durable += count


class LedgerWriter(BatchWriter):
    """Batches appended records and fsyncs each batch to the ledger file. Use through `open_ledger`."""

    def __init__(self, path: Path, *, batch_records: int = 512, max_delay_s: float = 0.05) -> None:
        super().__init__(str(path), batch_records=batch_records, max_delay_s=max_delay_s)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def _write_batch(self, batch: bytearray, count: int) -> None:
        try:
            await anyio.to_thread.run_sync(self._write_sync, batch, count)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot write the ledger: {exc.strerror or exc}") from None

    def _write_sync(self, batch: bytearray, count: int) -> None:
        # one write per batch in the usual case: a crash tears at most the last line
        with memoryview(batch) as view:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        os.fsync(self._fd)
        self.records_written += count

    def _close(self) -> None:
        os.close(self._fd)


class Tracked:
    """A call whose spend the writer samples (see `BatchWriter.track`); close it when the call ends."""

    def __init__(self, writer: BatchWriter, snapshot: Callable[[], InFlight], min_usd: float, every_s: float) -> None:
        self.writer = writer
        self.snapshot = snapshot
        self.min_usd = min_usd
        self.every_s = every_s
        self.last_usd = 0.0
        self.last_at = -math.inf  # the first growth (the prompt, billed at the 200) is recorded at once

    def close(self) -> None:
        self.writer._tracked.discard(self)

    def __enter__(self) -> Tracked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriterOptions(TypedDict, total=False):
    """`LedgerWriter`'s tuning, as `open_ledger` passes it on (tests batch differently)."""

    batch_records: int
    max_delay_s: float


@contextlib.asynccontextmanager
async def open_ledger(run_dir: Path, **options: Unpack[WriterOptions]) -> AsyncIterator[LedgerWriter]:
    """Open (recovering a torn tail) and write the ledger of a run folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = ledger_path(run_dir)
    torn = recover(path)
    lost = interrupted_in_flight(path)
    writer = LedgerWriter(path, **options)
    if torn:
        writer.append(
            Note(
                at=time.time(),
                kind="torn_line",
                message=f"cut {torn} bytes of a record torn by a crash off the end of the ledger",
            )
        )
    for attempt in lost:
        writer.append(attempt)
    if lost:
        writer.append(
            Note(
                at=time.time(),
                kind="recovered_in_flight",
                message=f"{len(lost)} call(s) were streaming when the last process died: each is "
                f"ledgered as interrupted with its spend up to its last in-flight record "
                f"(${sum(a.usd for a in lost):.6f})",
            )
        )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run_flusher)
            try:
                yield writer
            finally:
                tg.cancel_scope.cancel()
    finally:
        writer.close_sync()  # no await: runs even when the surrounding scope is cancelled


__all__ = ["BatchQueue", "BatchWriter", "LedgerWriter", "Tracked", "open_ledger"]
