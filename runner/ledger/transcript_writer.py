"""Writing a run's transcripts: records queued without blocking, compressed and fsynced off the loop.

`append` encodes a record into the queue (no await: it can run in a ``finally``). A flusher task
takes the queue as one batch, compresses it into one gzip member and writes and fsyncs it in a
worker thread (zlib lets go of the GIL while it compresses, so the event loop keeps streaming). A
batch goes out when it reaches ``batch_bytes``, when ``max_delay_s`` has passed, or at once when
someone waits in `flush`; the pipeline does so before a job's completion reaches the ledger, so a
job the ledger calls done always has its transcript on disk.

Opening the file cuts a torn member off its end (`runner.ledger.transcripts.recover`), so what
was durable before a ``kill -9`` stays and the file stays whole.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from runner.errors import LedgerError
from runner.ledger.transcripts import (
    TranscriptHeader,
    TranscriptRecord,
    encode_line_into,
    encode_member,
    recover,
    transcripts_path,
)

# gzip level 6 (zlib's default): bench/transcripts.py measured it against levels 1 and 9 and zstandard
DEFAULT_LEVEL = 6


@dataclass
class WriterStats:
    """What the writer has done so far (bench/transcripts.py reports these)."""

    records: int = 0
    members: int = 0
    raw_bytes: int = 0
    written_bytes: int = 0
    # compressing, writing and fsyncing, in the worker thread (wall clock: it includes waiting for the
    # disk; no CPU clock here, since a thread's CPU clock can cost a millisecond a read on a loaded VM)
    busy_s: float = 0.0
    torn_bytes_cut: int = 0  # cut off the end when the file was opened


class TranscriptWriter:
    """Batches transcript records into gzip members. Use through `open_transcripts`."""

    def __init__(
        self, path: Path, *, level: int = DEFAULT_LEVEL, batch_bytes: int = 1 << 20, max_delay_s: float = 1.0
    ) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._level = level
        self._batch_bytes = batch_bytes
        self._max_delay_s = max_delay_s
        self._queue = bytearray()
        self._queued = 0
        self._appended = 0
        self._durable = 0
        self._wake = anyio.Event()
        self._durable_changed = anyio.Event()
        self._failed: LedgerError | None = None
        self._closed = False
        self.stats = WriterStats()

    def append(self, record: TranscriptRecord) -> None:
        """Queue a record (never blocks); it is on disk after the next batch."""
        if self._closed:
            raise LedgerError(f"{self.path}: append after close")
        encode_line_into(record, self._queue)
        self._queued += 1
        self._appended += 1
        if len(self._queue) >= self._batch_bytes:
            self._wake.set()

    def append_encoded(self, lines: bytes, count: int) -> None:
        """Queue ``count`` records already encoded as whole lines (a worker process's, in its order)."""
        if self._closed:
            raise LedgerError(f"{self.path}: append after close")
        self._queue += lines
        self._queued += count
        self._appended += count
        if len(self._queue) >= self._batch_bytes:
            self._wake.set()

    async def flush(self) -> None:
        """Wait until every record appended so far is on disk.

        Raises:
            LedgerError: the disk refused a write.
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
            if not self._queued:
                continue
            batch, count = self._take()
            try:
                # shielded: a cancel landing in to_thread's checkpoint would drop a batch already taken
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._write, batch, count)
            except OSError as exc:
                self._failed = LedgerError(f"{self.path}: cannot write the transcripts: {exc.strerror or exc}")
                self._durable_changed.set()
                raise self._failed from None
            self._durable += count
            self._durable_changed.set()
            self._durable_changed = anyio.Event()

    def _take(self) -> tuple[bytearray, int]:
        batch, count = self._queue, self._queued
        self._queue, self._queued = bytearray(), 0
        return batch, count

    def _write(self, batch: bytearray, count: int) -> None:
        started = time.perf_counter()
        member = encode_member(batch, self._level)
        with memoryview(member) as view:  # one write in the usual case: a crash tears at most the last member
            while view:
                view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        stats = self.stats
        stats.busy_s += time.perf_counter() - started
        stats.records += count
        stats.members += 1
        stats.raw_bytes += len(batch)
        stats.written_bytes += len(member)

    def close_sync(self) -> None:
        """Write what is queued and close; safe from any shutdown path, twice."""
        if self._closed:
            return
        if self._queued:
            batch, count = self._take()
            self._write(batch, count)
            self._durable += count
        self._closed = True
        os.close(self._fd)


@contextlib.asynccontextmanager
async def open_transcripts(
    run_dir: Path, header: TranscriptHeader, *, level: int = DEFAULT_LEVEL, max_delay_s: float = 1.0
) -> AsyncIterator[TranscriptWriter]:
    """Open (cutting a torn tail off) and write the transcripts of a run folder.

    Raises:
        TranscriptsCorrupt: the file is damaged before its end.
    """
    path = transcripts_path(Path(run_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = recover(path)
    writer = TranscriptWriter(path, level=level, max_delay_s=max_delay_s)
    writer.stats.torn_bytes_cut = torn
    writer.append(header)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run_flusher)
            try:
                yield writer
            finally:
                tg.cancel_scope.cancel()
    finally:
        writer.close_sync()  # no await: runs even when the surrounding scope is cancelled


__all__ = ["DEFAULT_LEVEL", "TranscriptWriter", "WriterStats", "open_transcripts"]
