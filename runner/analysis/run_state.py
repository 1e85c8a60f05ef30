"""One read of a run folder's ledger: its records sorted by the report's rules, its headers and notes,
and the state the run is in.

The state comes from the records the last process wrote (since its `RunHeader`):

- ``finished``: a ``run_end`` note and no stop (``stopped`` / ``interrupted``) before it;
- ``interrupted``: a ``run_end`` after a stop (Ctrl-C, the spend cap), or no ``run_end`` and no
  write for `LIVE_WINDOW_S` (the process died: `anytime run --resume` goes on);
- ``in_progress``: no ``run_end`` yet and a write within `LIVE_WINDOW_S` (a running sweep writes
  its in-flight spend about every second).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from runner.analysis.report import _Run
from runner.errors import LedgerError
from runner.ledger.reader import ReadInfo, iter_records, ledger_path
from runner.ledger.records import Attempt, InFlight, Note, Record, RunHeader

LIVE_WINDOW_S = 60.0
STOP_KINDS = ("stopped", "interrupted")
RunState = Literal["finished", "in_progress", "interrupted"]


class RunStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: RunState
    detail: str  # one sentence for people
    started_at: float | None  # the first process's start
    last_write_at: float  # the ledger file's modification time
    processes: int  # run headers: the first run and every resume
    jobs_done: int
    jobs_failed: int
    usd_total: float  # every attempt ledgered so far
    usd_in_flight: float  # calls still streaming (their last in-flight record): not in usd_total yet
    torn_tail_bytes: int  # a final line still being written (or torn by a crash)


@dataclass
class RunRead:
    """Everything one pass over a ledger gives."""

    path: Path
    run: _Run
    headers: list[RunHeader] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    last_notes: list[Note] = field(default_factory=list)  # written since the last run header
    info: ReadInfo = field(default_factory=ReadInfo)
    modified_at: float = 0.0
    in_flight: dict[tuple[str, int], float] = field(default_factory=dict)  # (call, attempt) -> spend so far

    @property
    def header(self) -> RunHeader | None:
        return self.headers[0] if self.headers else None

    def status(self, now: float | None = None) -> RunStatus:
        now = time.time() if now is None else now
        state, detail = _state(self.last_notes, self.modified_at, now)
        return RunStatus(
            state=state,
            detail=detail,
            started_at=self.headers[0].started_at if self.headers else None,
            last_write_at=self.modified_at,
            processes=len(self.headers),
            jobs_done=len(self.run.done),
            jobs_failed=sum(1 for n in self.notes if n.kind == "job_failed"),
            usd_total=sum(a.usd for a in self.run.attempts),
            usd_in_flight=sum(self.in_flight.values()) if state == "in_progress" else 0.0,
            torn_tail_bytes=self.info.torn_bytes,
        )


def read_run(run_dir: str | Path) -> RunRead:
    """Read a run folder's ledger once.

    Raises:
        LedgerError: no ledger in the folder, or a whole line is not a record (names file and line).
    """
    path = Path(run_dir)
    ledger = ledger_path(path)
    if not path.is_dir():
        raise LedgerError(f"{path}: no such run folder")
    if not ledger.is_file():
        raise LedgerError(f"{path}: not a run folder (no {ledger.name} in it)")
    info = ReadInfo()
    modified_at = os.stat(ledger).st_mtime
    records: list[Record] = list(iter_records(path, info))
    read = RunRead(path=path, run=_Run(records), info=info, modified_at=modified_at)
    for record in records:
        if isinstance(record, RunHeader):
            read.headers.append(record)
            read.last_notes = []
            read.in_flight = {}  # a new process: the last one's streams are over
        elif isinstance(record, Note):
            read.notes.append(record)
            read.last_notes.append(record)
        elif isinstance(record, InFlight):
            read.in_flight[(record.call_id, record.attempt)] = record.usd
        elif isinstance(record, Attempt):
            read.in_flight.pop((record.call_id, record.attempt), None)
    return read


def _state(last_notes: list[Note], modified_at: float, now: float) -> tuple[RunState, str]:
    stops = [n for n in last_notes if n.kind in STOP_KINDS]
    ended = any(n.kind == "run_end" for n in last_notes)
    quiet = max(0.0, now - modified_at)
    if ended and stops:
        return "interrupted", f"stopped: {stops[0].message}"
    if ended:
        return "finished", "finished"
    if quiet < LIVE_WINDOW_S:
        return "in_progress", f"running: last write {quiet:.0f} s ago"
    where = f"stopped ({stops[0].message}), " if stops else ""
    return "interrupted", f"{where}no end record and no write for {_ago(quiet)}: the process is gone"


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
