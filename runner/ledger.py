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
import mmap
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec

from runner.errors import LedgerError
from runner.records import Attempt, InFlight, Note, Record, RunHeader, Synthesis

LEDGER_FILE = "ledger.jsonl"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)


def ledger_path(run_dir: Path) -> Path:
    """The ledger file of a run folder."""
    return Path(run_dir) / LEDGER_FILE


def recover(path: Path) -> int:
    """Cut a torn final line off; return how many bytes were removed (0: the file was whole)."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # scan back to the last newline; a torn line is short compared with the file
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


class LedgerWriter:
    """Batches appended records and fsyncs each batch. Use through `open_ledger`."""

    def __init__(self, path: Path, *, batch_records: int = 512, max_delay_s: float = 0.05) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # encoded records waiting for the next batch, and how many they are
        self._queue = bytearray()
        self._queued = 0
        self._batch_records = batch_records
        self._max_delay_s = max_delay_s
        self._wake = anyio.Event()
        self._appended = 0
        self._durable = 0
        self._durable_changed = anyio.Event()
        self._closed = False
        self._failed: LedgerError | None = None
        self._tracked: set[Tracked] = set()
        self._last_sample = -1.0e9
        self.records_written = 0

    def append(self, record: Record) -> None:
        """Queue a record (never blocks). It is durable after the next batch's fsync."""
        if self._closed:
            raise LedgerError(f"{self.path}: append after close")
        _encoder.encode_into(record, self._queue, -1)
        self._queue.append(10)  # b"\n"
        self._queued += 1
        self._appended += 1
        if self._queued >= self._batch_records:
            self._wake.set()

    def track(self, snapshot: Callable[[], Attempt], *, min_usd: float = 0.0002, every_s: float = 1.0) -> Tracked:
        """Record a running call's spend so far, so a crash cannot lose it.

        The flusher calls ``snapshot()`` (on the event loop) before each batch and appends an
        `InFlight` record when the spend grew by ``min_usd`` or ``every_s`` passed with any growth.
        The caller closes the handle and appends the final `Attempt` when the call ends.
        """
        handle = Tracked(self, snapshot, min_usd, every_s)
        self._tracked.add(handle)
        return handle

    def _sample_in_flight(self) -> None:
        now = time.monotonic()
        for handle in list(self._tracked):
            record = handle.snapshot()
            grown = record.usd - handle.last_usd
            if grown > 0 and (grown >= handle.min_usd or now - handle.last_at >= handle.every_s):
                handle.last_usd, handle.last_at = record.usd, now
                self.append(InFlight(attempt=record))

    async def flush(self) -> None:
        """Wait until every record appended so far is on disk.

        Raises:
            LedgerError: the disk refused a write (the run must stop: spend would go unrecorded).
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
            # sampling every running call has a cost (thousands may stream at once): 4 times a second
            if self._tracked and time.monotonic() - self._last_sample >= 0.25:
                self._last_sample = time.monotonic()
                self._sample_in_flight()
            if self._queued:
                batch, count = self._take()
                try:
                    # shielded: to_thread checkpoints before starting the thread, and a cancel
                    # landing there would drop a batch already taken off the queue
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._write, batch, count)
                except OSError as exc:
                    self._failed = LedgerError(f"{self.path}: cannot write the ledger: {exc.strerror or exc}")
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
        # one write per batch in the usual case: a crash tears at most the last line
        with memoryview(batch) as view:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        os.fsync(self._fd)
        self.records_written += count

    def append_sync(self, record: Record) -> None:
        """Append and fsync now, blocking the caller: for a last record when no flush can be awaited
        (a signal handler, a cancelled scope). Records queued before it are written first, in order."""
        self.append(record)
        batch, count = self._take()
        self._write(batch, count)
        self._durable += count

    def close_sync(self) -> None:
        """Write what is queued and close; safe to call from any shutdown path, twice."""
        if self._closed:
            return
        if self._queued:
            batch, count = self._take()
            self._write(batch, count)
            self._durable += count
        self._closed = True
        os.close(self._fd)


class Tracked:
    """A call whose spend the writer samples (see `LedgerWriter.track`); close it when the call ends."""

    def __init__(self, writer: LedgerWriter, snapshot: Callable[[], Attempt], min_usd: float, every_s: float) -> None:
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


@contextlib.asynccontextmanager
async def open_ledger(run_dir: Path, **options: float) -> AsyncIterator[LedgerWriter]:
    """Open (recovering a torn tail) and write the ledger of a run folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = ledger_path(run_dir)
    torn = recover(path)
    lost = interrupted_in_flight(path)
    writer = LedgerWriter(path, **options)  # type: ignore[arg-type]
    if torn:
        writer.append(Note(at=time.time(), kind="torn_line",
                           message=f"cut {torn} bytes of a record torn by a crash off the end of the ledger"))
    for attempt in lost:
        writer.append(attempt)
    if lost:
        writer.append(Note(at=time.time(), kind="recovered_in_flight",
                           message=f"{len(lost)} call(s) were streaming when the last process died: each is "
                           f"ledgered as interrupted with its spend up to its last in-flight record "
                           f"(${sum(a.usd for a in lost):.6f})"))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run_flusher)
            try:
                yield writer
            finally:
                tg.cancel_scope.cancel()
    finally:
        writer.close_sync()  # no await: runs even when the surrounding scope is cancelled


class _Skip(msgspec.Struct, tag_field="type", gc=False):
    pass


class _TailAttempt(_Skip, tag="attempt"):
    call_id: str
    attempt: int


class _TailRun(_Skip, tag="run"):
    pass


class _TailSnapshot(_Skip, tag="snapshot"):
    pass


class _TailJob(_Skip, tag="job"):
    pass


class _TailSynthesis(_Skip, tag="synthesis"):
    pass


class _TailNote(_Skip, tag="note"):
    pass


# in-flight recovery needs only attempt keys and InFlight records; everything else is skipped
_tail_decoder = msgspec.json.Decoder(
    _TailAttempt | InFlight | _TailRun | _TailSnapshot | _TailJob | _TailSynthesis | _TailNote
)


def interrupted_in_flight(path: Path) -> list[Attempt]:
    """Attempts a crash left with `InFlight` records and no `Attempt`: their last known spend.

    Only the records since the last run header are read: every earlier process's leftovers were
    recovered when the next one opened the ledger (recovery is keyed by call and attempt, so a
    second pass over the same records adds nothing).
    """
    if not path.exists() or path.stat().st_size == 0:
        return []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm.find(b'"type":"inflight"') < 0:
            return []  # the common case: nothing was ever in flight at a batch, or no tracking
        start = mm.rfind(b'\n{"type":"run"') + 1
        end = mm.rfind(b"\n") + 1
        tail = mm[start:end]
    last: dict[tuple[str, int], Attempt] = {}
    finished: set[tuple[str, int]] = set()
    for rec in _tail_decoder.decode_lines(tail):
        if isinstance(rec, InFlight):
            last[(rec.attempt.call_id, rec.attempt.attempt)] = rec.attempt
        elif isinstance(rec, _TailAttempt):
            finished.add((rec.call_id, rec.attempt))
    return [
        msgspec.structs.replace(a, status="interrupted", error_class="crash",
                                error="the process died mid-call: spend counted up to its last in-flight record")
        for key, a in last.items() if key not in finished
    ]


@dataclass
class ReadInfo:
    """What `iter_records` saw besides records: a torn final line (crashed or still-running writer)."""

    lines: int = 0
    torn_line: int | None = None  # its line number
    torn_bytes: int = 0


def iter_records(run_dir: Path, info: ReadInfo | None = None) -> Iterator[Record]:
    """Stream the records of a run folder (or a ledger file).

    A torn final line is skipped and reported in ``info`` when one is given.

    Raises:
        LedgerError: no ledger at the path, or a whole line is not a record (names file and line).
    """
    path = Path(run_dir)
    if path.is_dir():
        path = ledger_path(path)
    if not path.exists():
        raise LedgerError(f"{path}: no ledger here")
    with open(path, "rb") as f:
        line_no = 0
        for line in f:
            line_no += 1
            if not line.endswith(b"\n"):
                if info is not None:
                    info.torn_line, info.torn_bytes = line_no, len(line)
                return
            if info is not None:
                info.lines = line_no
            if line.strip():
                try:
                    yield _decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise LedgerError(f"{path}:{line_no}: not a ledger record: {exc}") from None


@dataclass
class LedgerState:
    """What a resume needs to know about a ledger."""

    headers: list[RunHeader] = field(default_factory=list)
    completed_jobs: set[str] = field(default_factory=set)
    total_usd: float = 0.0
    usd_by_provider: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    usd_by_job: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    synthesis: dict[str, Synthesis] = field(default_factory=dict)
    attempts: int = 0
    notes: list[Note] = field(default_factory=list)

    @property
    def unfinished_jobs(self) -> set[str]:
        """Jobs with paid attempts but no completion record: a resume redoes them (their spend stays)."""
        return {j for j in self.usd_by_job if j not in self.completed_jobs and not j.startswith("synthesis:")}


class _Light(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    """Just the fields a resume needs: decoding 1M lines must take seconds, not minutes."""


class _LightAttempt(_Light, tag="attempt"):
    job_id: str
    provider: str
    usd: float = 0.0


class _LightJob(_Light, tag="job"):
    job_id: str


class _LightSnapshot(_Light, tag="snapshot"):
    pass


class _LightInFlight(_Light, tag="inflight"):
    pass


# rare kinds decode in full; the frequent ones skip every field a resume does not need
_resume_decoder = msgspec.json.Decoder(
    _LightAttempt | _LightJob | _LightSnapshot | _LightInFlight | RunHeader | Synthesis | Note
)
_CHUNK = 1 << 23


def _whole_line_chunks(path: Path) -> Iterator[memoryview]:
    """The file's whole lines in pieces of about `_CHUNK` bytes, straight from the page cache
    (mmap: no copy); a torn tail is left out."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            end = mm.rfind(b"\n") + 1
            pos = 0
            with memoryview(mm) as view:
                while pos < end:
                    cut = mm.rfind(b"\n", pos, min(pos + _CHUNK, end)) + 1
                    if cut <= pos:  # a single line longer than a chunk
                        cut = mm.find(b"\n", pos, end) + 1
                    with view[pos:cut] as piece:
                        yield piece
                    pos = cut


def _bad_line(path: Path) -> LedgerError:
    """The first line that is not a record (the slow way: only on the error path)."""
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            try:
                _resume_decoder.decode(line)
            except msgspec.DecodeError as exc:
                return LedgerError(f"{path}:{line_no}: not a ledger record: {exc}")
    return LedgerError(f"{path}: not a ledger")


def load_state(run_dir: Path) -> LedgerState:
    """Read a ledger once and summarise it for a resume (a torn final line is ignored).

    Raises:
        LedgerError: a line in the middle is not a ledger record (names file and line).
    """
    state = LedgerState()
    path = ledger_path(Path(run_dir))
    if not path.exists():
        return state
    usd_by_job, usd_by_provider, completed = state.usd_by_job, state.usd_by_provider, state.completed_jobs
    total, attempts = 0.0, 0  # locals: this loop runs once per line of a million-line ledger
    for chunk in _whole_line_chunks(path):
        try:
            records = _resume_decoder.decode_lines(chunk)
        except msgspec.DecodeError:
            raise _bad_line(path) from None
        for rec in records:
            kind = type(rec)
            if kind is _LightAttempt:
                usd = rec.usd
                attempts += 1
                total += usd
                usd_by_provider[rec.provider] += usd
                usd_by_job[rec.job_id] += usd
            elif kind is _LightJob:
                completed.add(rec.job_id)
            elif kind is RunHeader:
                state.headers.append(rec)
            elif kind is Synthesis:
                state.synthesis[rec.key] = rec
            elif kind is Note:
                state.notes.append(rec)
    state.total_usd, state.attempts = total, attempts
    return state


__all__ = [
    "LedgerState", "LedgerWriter", "ReadInfo", "Tracked", "interrupted_in_flight", "iter_records", "load_state",
    "open_ledger", "recover",
]
