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
from runner.ledger.writer import BatchQueue

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


class TranscriptWriter(BatchQueue[TranscriptRecord]):
    """Batches transcript records into gzip members (the ledger's batching, `BatchQueue`). Use
    through `open_transcripts`."""

    def __init__(
        self, path: Path, *, level: int = DEFAULT_LEVEL, batch_bytes: int = 1 << 20, max_delay_s: float = 1.0
    ) -> None:
        super().__init__(str(path), max_delay_s=max_delay_s)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._level = level
        self._batch_bytes = batch_bytes
        self.stats = WriterStats()

    def _encode_into(self, record: TranscriptRecord, buffer: bytearray) -> None:
        encode_line_into(record, buffer)

    def _full(self) -> bool:
        return len(self._queue) >= self._batch_bytes

    async def _write_batch(self, batch: bytearray, count: int) -> None:
        try:
            await anyio.to_thread.run_sync(self._write_sync, batch, count)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot write the transcripts: {exc.strerror or exc}") from None

    def _write_sync(self, batch: bytearray, count: int) -> None:
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

    def _close(self) -> None:
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
