"""Reading a run's ledger: every record in order, or the summary a resume needs, fast.

Readers skip a torn final line, so a ledger being written can be read at any time (pandas,
DuckDB and jq read it as is).
"""

from __future__ import annotations

import mmap
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from runner.errors import LedgerError
from runner.ledger.records import Note, Record, RunHeader, Synthesis, decode_line

LEDGER_FILE = "ledger.jsonl"


def ledger_path(run_dir: Path) -> Path:
    """The ledger file of a run folder."""
    return Path(run_dir) / LEDGER_FILE


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
                    yield decode_line(line)
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


class _LightReuse(_Light, tag="reuse"):
    pass


class _LightBatch(_Light, tag="batch"):
    pass


# rare kinds decode in full; the frequent ones skip every field a resume does not need
_resume_decoder = msgspec.json.Decoder(
    _LightAttempt
    | _LightJob
    | _LightSnapshot
    | _LightInFlight
    | _LightBatch
    | _LightReuse
    | RunHeader
    | Synthesis
    | Note
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


__all__ = ["LEDGER_FILE", "LedgerState", "ReadInfo", "iter_records", "ledger_path", "load_state"]
