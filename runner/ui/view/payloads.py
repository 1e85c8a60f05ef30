"""The JSON each endpoint of the viewer serves, as plain data built from a `RunModel`.

Every number comes from `runner.analysis` (the report model, the curves, the paired comparison,
the trace table); this module only picks and arranges. Qualities stay in 0..1 and the Anytime
Index in points, as the report model has them; the page scales them for display.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from runner.analysis.anytime import problem_means
from runner.analysis.compare import CellComparison, compare_cell
from runner.analysis.report import Cell, Key
from runner.analysis.trace_filter import TraceFilter, select
from runner.analysis.traces import TraceRow
from runner.ledger.records import Attempt
from runner.ui.view.catalog import ViewError
from runner.ui.view.models import RunModel
from runner.ui.view.problems import find_problem, planned_jobs
from runner.ui.view.transcripts import transcript_of, transcripts_state

Json = dict[str, Any]
ROWS_SHOWN = 500
_DESIGN = ("model", "dataset", "method")  # what a run's traces vary over, besides budget and sample


def _plain(value: object) -> Any:
    return msgspec.to_builtins(value)


def _manifest_outline(model: RunModel) -> Json:
    """The run's design: what its manifest selects (before any trace), with what the ledger holds."""
    header = model.read.header
    manifest = header.manifest if header else {}
    sweep = _table(manifest, "sweep")
    seen = {name: {getattr(r, name) for r in model.rows if getattr(r, name) != "?"} for name in _DESIGN}
    budgets = {c.budget for r in model.rows for c in r.cuts if c.budget is not None}
    budgets.update(sweep.get("budgets") or [])
    for dataset in _table(manifest, "datasets").values():
        budgets.update((dataset.get("budgets") or []) if isinstance(dataset, dict) else [])
    return {
        **{f"{name}s": sorted(seen[name] | set(_selected(manifest, f"{name}s"))) for name in _DESIGN},
        "budgets": sorted(budgets),
        "samples": sweep.get("samples"),
    }


def _table(manifest: object, name: str) -> dict[str, Any]:
    table = manifest.get(name) if isinstance(manifest, dict) else None
    return table if isinstance(table, dict) else {}


def _selected(manifest: object, table: str) -> list[str]:
    """The entries of a manifest table the sweep runs (its ``sweep.<table>`` list, else all)."""
    chosen = _table(manifest, "sweep").get(table)
    return [str(c) for c in chosen] if isinstance(chosen, list) else list(_table(manifest, table))


def run_summary(run_id: str, model: RunModel) -> Json:
    """A run as the runs list shows it: state, spend, progress, and each cell's Anytime Index."""
    status = model.read.status()
    return {
        "id": run_id,
        "path": str(model.path),
        "name": model.report.name,
        "version": model.version,
        "status": _plain(status),
        "outline": _manifest_outline(model),
        "jobs_done": status.jobs_done,
        "jobs_planned": planned_jobs(model.read.header),
        "usd_total": status.usd_total,
        "cells": [
            {
                "model": c.model,
                "dataset": c.dataset,
                "method": c.method,
                "problems": c.summary.problems,
                "anytime_index": _plain(c.summary.anytime_index),
                "usd_total": c.usd_total,
            }
            for c in model.report.cells
        ],
    }


def run_detail(run_id: str, model: RunModel) -> Json:
    """The run page: the summary, the report's cells, the curves, the notes and the manifest."""
    header = model.read.header
    return {
        **run_summary(run_id, model),
        "report": _plain(model.report),
        "curves": [_curve(c) for c in model.report.cells],
        "notes": [_plain(n) for n in model.read.notes[-200:]],
        "manifest": header.manifest if header else None,
        "manifest_path": header.manifest_path if header else None,
        "prices": header.prices if header else None,
        "started_at": header.started_at if header else None,
        "transcripts": transcripts_state(model.path),
    }


def _curve(cell: Cell) -> Json:
    """A cell's chart points: Q(b) and its running best with their bands, and dollars at each budget."""
    budgets = cell.summary.budgets
    bands = cell.bands
    dollars: Sequence[float | None] = cell.usd_at_budget or [None] * len(budgets)
    return {
        "model": cell.model,
        "dataset": cell.dataset,
        "method": cell.method,
        "problems": cell.summary.problems,
        "points": [
            {
                "budget": b,
                "quality": _plain(bands.quality[t]) if bands else {"value": cell.summary.quality[t]},
                "running_best": _plain(bands.running_best[t]) if bands else None,
                "usd": dollars[t],
            }
            for t, b in enumerate(budgets)
        ],
    }


def traces(model: RunModel, chosen: TraceFilter, limit: int = ROWS_SHOWN) -> Json:
    """The problems table: the traces the filter keeps, in its order (the first ``limit``)."""
    kept = select(model.rows, chosen)
    return {
        "version": model.version,
        "filter": _plain(chosen),
        "total": len(model.rows),
        "matched": len(kept),
        "problems": len({(r.dataset, r.problem_id) for r in kept}),
        "usd": sum(r.usd for r in kept),
        "rows": [_plain(r) for r in kept[:limit]],
        "outline": _manifest_outline(model),
    }


def _calls(attempts: list[Attempt]) -> list[Json]:
    calls: dict[str, list[Attempt]] = defaultdict(list)
    for a in sorted(attempts, key=lambda a: (a.started_at, a.attempt)):
        calls[a.call_id].append(a)
    return [
        {"call_id": call_id, "kind": tries[0].kind, "budget": tries[0].budget, "attempts": [_plain(a) for a in tries]}
        for call_id, tries in calls.items()
    ]


def job(model: RunModel, job_id: str) -> Json:
    """One trace: its row, its calls and attempts (and the calls reused instead), its problem and
    gold, its transcript if any."""
    row = next((r for r in model.rows if r.job_id == job_id), None)
    if row is None:
        raise ViewError(404, f"no job {job_id!r} in {model.path} (its ledger has no record of it)")
    problem, problem_missing = find_problem(model.read.header, row.dataset, row.problem_id)
    transcript, transcript_missing = transcript_of(model.path, job_id)
    return {
        "version": model.version,
        "row": _plain(row),
        "calls": _calls([a for a in model.read.run.attempts if a.job_id == job_id]),
        # calls taken from ones already paid for (docs/reuse.md): not spend, shown apart
        "reused": [_plain(r) for r in model.read.run.reused if r.job_id == job_id],
        "problem": _plain(problem) if problem else None,
        "problem_missing": problem_missing,
        "transcript": transcript,
        "transcript_missing": transcript_missing,
        "siblings": [_sibling(r) for r in model.rows if _same_problem(r, row) and r.job_id != job_id],
    }


def _same_problem(a: TraceRow, b: TraceRow) -> bool:
    return (a.dataset, a.problem_id) == (b.dataset, b.problem_id)


def _sibling(row: TraceRow) -> Json:
    return {
        "job_id": row.job_id,
        "model": row.model,
        "method": row.method,
        "sample": row.sample,
        "cuts": [{"budget": c.budget, "score": c.score} for c in row.cuts],
    }


def parse_cell(text: str | None, known: list[Key], side: str) -> Key | None:
    """A cell named ``model/dataset/method`` (None: not given).

    Raises:
        ViewError: 400 when the run has no such cell (the message lists those it has).
    """
    if not text:
        return None
    parts = tuple(text.split("/"))
    if len(parts) != 3 or parts not in known:
        names = ", ".join("/".join(k) for k in known) or "none"
        raise ViewError(400, f"{side}_cell: no cell {text!r} in run {side.upper()} (cells: {names})")
    return (parts[0], parts[1], parts[2])


def default_pairs(keys_a: list[Key], keys_b: list[Key], same_run: bool) -> list[tuple[Key, Key]]:
    """Cells to compare when none are named: the same cell in both runs; within one run, every
    two models on the same dataset and method."""
    if not same_run:
        return [(k, k) for k in keys_a if k in keys_b]
    return [(a, b) for i, a in enumerate(keys_a) for b in keys_a[i + 1 :] if (a[1], a[2]) == (b[1], b[2])]


def _budgets(model: RunModel, key: Key) -> list[int]:
    cell = next(c for c in model.report.cells if (c.model, c.dataset, c.method) == key)
    return list(cell.summary.budgets)


def comparison(a: tuple[str, RunModel], b: tuple[str, RunModel], cells: tuple[str | None, str | None]) -> Json:
    """Two runs (or two cells of one run) paired by problem: B − A (`runner.analysis.compare`)."""
    (id_a, run_a), (id_b, run_b) = a, b
    keys_a = [(c.model, c.dataset, c.method) for c in run_a.report.cells]
    keys_b = [(c.model, c.dataset, c.method) for c in run_b.report.cells]
    cell_a, cell_b = parse_cell(cells[0], keys_a, "a"), parse_cell(cells[1], keys_b, "b")
    if cell_a or cell_b:
        pairs = [(cell_a or cell_b or keys_a[0], cell_b or cell_a or keys_b[0])]
        if pairs[0][0] not in keys_a or pairs[0][1] not in keys_b:
            raise ViewError(400, f"both runs need the cell: {'/'.join(pairs[0][0])} vs {'/'.join(pairs[0][1])}")
    else:
        pairs = default_pairs(keys_a, keys_b, run_a.path == run_b.path)
    return {
        "a": {"id": id_a, "name": run_a.report.name, "cells": ["/".join(k) for k in keys_a]},
        "b": {"id": id_b, "name": run_b.report.name, "cells": ["/".join(k) for k in keys_b]},
        "pairs": [_pair(run_a, run_b, ka, kb) for ka, kb in pairs],
    }


def _pair(run_a: RunModel, run_b: RunModel, ka: Key, kb: Key) -> Json:
    """One pair of cells compared, with each changed problem's grades at every budget and its traces."""
    table_a, table_b = run_a.tables[ka], run_b.tables[kb]
    budgets = sorted(set(_budgets(run_a, ka)) & set(_budgets(run_b, kb)))
    result: CellComparison = compare_cell(table_a, table_b, budgets, ka, run_a.report.mode, run_a.seed)
    means_a, means_b = problem_means(table_a, budgets), problem_means(table_b, budgets)
    jobs_a, jobs_b = _jobs_by_problem(run_a.cell_rows(ka)), _jobs_by_problem(run_b.cell_rows(kb))
    changed = sorted({c.problem_id for c in result.changed})
    return {
        "a": list(ka),
        "b": list(kb),
        "budgets": budgets,
        "problems": result.problems,
        "only_a": len(set(table_a) - set(table_b)),
        "only_b": len(set(table_b) - set(table_a)),
        "gaps": [_plain(q) for q in result.quality],
        "anytime_index": _plain(result.anytime_index),
        "anytime_index_a": result.anytime_index_a,
        "anytime_index_b": result.anytime_index_b,
        "changed": [
            {
                "problem_id": p,
                "a": [None if math.isnan(v) else v for v in means_a[p]],
                "b": [None if math.isnan(v) else v for v in means_b[p]],
                "jobs_a": jobs_a.get(p, []),
                "jobs_b": jobs_b.get(p, []),
            }
            for p in changed
        ],
    }


def _jobs_by_problem(rows: list[TraceRow]) -> dict[str, list[str]]:
    by_problem: defaultdict[str, list[str]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.sample):
        by_problem[row.problem_id].append(row.job_id)
    return by_problem


def broken_run(run_id: str, path: Path, message: str) -> Json:
    """A run folder that cannot be shown, as the runs list shows it."""
    return {"id": run_id, "path": str(path), "name": path.name, "error": message}
