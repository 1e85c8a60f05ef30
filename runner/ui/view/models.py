"""One run folder as the viewer needs it: the report (its cells carry the curves' bands and dollars
per budget), every trace as a row, and the score tables, all from one version of the ledger.

Built once per ledger version (its size and modification time), so a finished run is read once
and a run in progress is read again only when it has grown. Building is plain blocking work: the
server runs it in a worker thread, one build at a time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner.analysis.anytime import ScoreTable
from runner.analysis.report import Key, RunReport, build_report
from runner.analysis.run_state import RunRead, read_run
from runner.analysis.traces import TraceRow, trace_rows
from runner.errors import LedgerError
from runner.ledger.reader import ledger_path
from runner.ui.view.catalog import ViewError, run_folder_problem


@dataclass(frozen=True)
class RunModel:
    path: Path
    version: str  # the ledger's size and modification time: changes when the run writes
    read: RunRead
    report: RunReport
    rows: list[TraceRow]
    tables: dict[Key, ScoreTable]
    seed: int

    def cell_rows(self, key: Key) -> list[TraceRow]:
        return [r for r in self.rows if (r.model, r.dataset, r.method) == key]


def ledger_version(run_dir: Path) -> str:
    """A token that changes whenever the run's ledger is written to."""
    try:
        st = os.stat(ledger_path(run_dir))
    except OSError:
        return "missing"
    return f"{st.st_size}-{st.st_mtime_ns}"


def build_model(run_dir: Path) -> RunModel:
    """Read one run folder into everything the viewer serves.

    Raises:
        ViewError: 404 when the folder is not a run folder, 422 when its ledger cannot be read
            (a line in the middle that is not a record: the message names the file and line).
    """
    problem = run_folder_problem(run_dir)
    if problem is not None:
        raise ViewError(404, problem)
    version = ledger_version(run_dir)
    try:
        read = read_run(run_dir)
        report = build_report([run_dir]).runs[0]
    except LedgerError as exc:
        raise ViewError(422, f"cannot read this run's ledger: {exc}") from None
    header = read.header
    run_table = header.manifest.get("run", {}) if header else {}
    seed = int(run_table.get("seed", 0)) if isinstance(run_table, dict) else 0
    rows = trace_rows(read.run, read.notes, header.prices if header else None)
    tables, _ = read.run.score_tables()
    return RunModel(path=run_dir, version=version, read=read, report=report, rows=rows, tables=dict(tables), seed=seed)


class ModelCache:
    """The latest model of each run folder, rebuilt when its ledger changes.

    A run in progress changes all the time; a paper-scale ledger takes seconds to build (the
    bootstraps). So a model younger than twice its own build time (and at least `MIN_AGE_S`) is
    served as it is: live pages lag a little and the viewer spends at most about a third of a core.
    """

    MIN_AGE_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._models: dict[Path, tuple[RunModel, float, float]] = {}  # model, built at, build seconds
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, run_dir: Path) -> RunModel:
        with self._lock:
            cached = self._models.get(run_dir)
            if cached is not None:
                model, built_at, took = cached
                fresh = model.version == ledger_version(run_dir)
                if fresh or self._clock() - built_at < max(self.MIN_AGE_S, 2 * took):
                    return model
            start = self._clock()
            model = build_model(run_dir)
            self._models[run_dir] = (model, self._clock(), self._clock() - start)
            return model
