"""Two runs compared, paired by problem: per cell, B − A in Q(b) at every budget and in the Anytime
Index, with paired bootstrap intervals, and the problems whose score changed.

A cell is a (model, dataset, method) both runs have. Pairing is by problem: each problem's score is
its mean over samples in each run, and one resample draws the same problems for A and B, so the
interval reflects the pairing. Runs over different problem sets are refused (`ProblemSetsDiffer`)
unless ``intersect`` is set; then each dataset keeps the problems both runs evaluated, and the
comparison says how many that is.

`compare_cell` is the one function that compares one cell (the viewer's comparison page uses it);
`compare_scores` applies it to every cell two runs share, and `runner.analysis.report.compare_runs`
reads two run folders and does that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from runner.analysis.anytime import (
    Interval,
    Mode,
    ScoreTable,
    bootstrap_many,
    problem_means,
    quality_curve,
    rows_index,
)
from runner.errors import ConfigError

Key = tuple[str, str, str]  # (model, dataset, method)


class ProblemSetsDiffer(ConfigError):
    """The two runs evaluated different problems; the message names them and the ``--intersect`` fix."""


class RunScores(msgspec.Struct, kw_only=True):
    """A run's counted scores per (model, dataset, method), with the settings its report uses
    (`runner.analysis.report.run_scores` reads them from a run folder)."""

    run_dir: str
    name: str
    mode: Mode
    seed: int
    tables: dict[Key, dict[str, dict[int, dict[int | None, float]]]]


class BudgetDifference(msgspec.Struct, frozen=True, kw_only=True):
    """Q at one budget in A and in B (0..1), and B − A with its paired 95% interval."""

    budget: int
    a: float
    b: float
    difference: Interval


class ProblemChange(msgspec.Struct, frozen=True, kw_only=True):
    """A problem whose score (mean over its samples) differs between the runs at a budget."""

    problem_id: str
    budget: int
    a: float
    b: float


class CellComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One (model, dataset, method) in both runs: B − A per budget and in the Anytime Index (points)."""

    model: str
    dataset: str
    method: str
    budgets: tuple[int, ...]
    problems: int  # paired problems (those both runs have)
    quality: tuple[BudgetDifference, ...]
    anytime_index_a: float
    anytime_index_b: float
    anytime_index: Interval  # B − A, in Anytime Index points
    changed: tuple[ProblemChange, ...]


class DatasetKept(msgspec.Struct, frozen=True, kw_only=True):
    """How many problems of a dataset the comparison kept, of each run's."""

    dataset: str
    kept: int
    in_a: int
    in_b: int


class RunComparison(msgspec.Struct, frozen=True, kw_only=True):
    """Run B against run A (the first one named): every cell both have."""

    a: str
    b: str
    mode: Mode
    intersect: bool
    datasets: tuple[DatasetKept, ...]
    cells: tuple[CellComparison, ...]
    only_in_a: tuple[str, ...]  # "model · dataset · method" of cells one run lacks
    only_in_b: tuple[str, ...]


def compare_cell(
    a: ScoreTable,
    b: ScoreTable,
    budgets: Sequence[int],
    cell: tuple[str, str, str],
    mode: Mode = "mean_then_max",
    seed: int = 0,
) -> CellComparison:
    """B − A for one cell over the problems both tables hold (``cell`` is (model, dataset, method)).

    Every statistic comes from the same paired resamples of problems: Q at each budget and the index.
    """
    budgets = tuple(budgets)
    common = sorted(set(a) & set(b))
    means_a, means_b = problem_means(a, budgets), problem_means(b, budgets)
    rows = [means_a[p] + means_b[p] for p in common]  # one row: A's curve, then B's
    width = len(budgets)

    def statistics(r: Sequence[Sequence[float]]) -> list[float]:
        ra, rb = [row[:width] for row in r], [row[width:] for row in r]
        qa, qb = quality_curve(ra, width), quality_curve(rb, width)
        index_a, index_b = rows_index(ra, budgets, mode), rows_index(rb, budgets, mode)
        return [*(y - x for x, y in zip(qa, qb, strict=True)), index_b - index_a, *qa, *qb, index_a, index_b]

    intervals = bootstrap_many(rows, statistics, seed)
    point = [i.value for i in intervals]
    qa, qb = point[width + 1 : 2 * width + 1], point[2 * width + 1 : 3 * width + 1]
    return CellComparison(
        model=cell[0],
        dataset=cell[1],
        method=cell[2],
        budgets=budgets,
        problems=len(common),
        quality=tuple(
            BudgetDifference(budget=budget, a=qa[t], b=qb[t], difference=intervals[t])
            for t, budget in enumerate(budgets)
        ),
        anytime_index_a=point[-2],
        anytime_index_b=point[-1],
        anytime_index=intervals[width],
        changed=tuple(
            ProblemChange(problem_id=p, budget=budget, a=means_a[p][t], b=means_b[p][t])
            for p in common
            for t, budget in enumerate(budgets)
            if _changed(means_a[p][t], means_b[p][t])
        ),
    )


def compare_scores(a: RunScores, b: RunScores, intersect: bool = False) -> RunComparison:
    """Every cell both runs have, B − A, paired by problem (`runner.analysis.report.compare_runs`
    does this for two run folders).

    Raises:
        ProblemSetsDiffer: a dataset's problems differ between the runs and ``intersect`` is off.
    """
    kept = _problem_sets(a, b, intersect)
    shared = sorted(set(a.tables) & set(b.tables))
    cells = []
    for key in shared:
        keep = kept[key[1]].problems
        table_a = {p: s for p, s in a.tables[key].items() if p in keep}
        table_b = {p: s for p, s in b.tables[key].items() if p in keep}
        budgets = sorted(_budgets(table_a) & _budgets(table_b))
        if budgets and table_a and table_b:
            cells.append(compare_cell(table_a, table_b, budgets, key, a.mode, a.seed))
    return RunComparison(
        a=a.name,
        b=b.name,
        mode=a.mode,
        intersect=intersect,
        datasets=tuple(k.counts for k in kept.values()),
        cells=tuple(cells),
        only_in_a=tuple(" · ".join(k) for k in sorted(set(a.tables) - set(b.tables))),
        only_in_b=tuple(" · ".join(k) for k in sorted(set(b.tables) - set(a.tables))),
    )


class _Kept(msgspec.Struct):
    problems: set[str]
    counts: DatasetKept


def _problem_sets(a: RunScores, b: RunScores, intersect: bool) -> dict[str, _Kept]:
    """Per dataset the problems compared: both runs' (identical sets), or their intersection."""
    kept: dict[str, _Kept] = {}
    for dataset in sorted({k[1] for k in a.tables} | {k[1] for k in b.tables}):
        in_a = {p for k, t in a.tables.items() if k[1] == dataset for p in t}
        in_b = {p for k, t in b.tables.items() if k[1] == dataset for p in t}
        if in_a and in_b and in_a != in_b and not intersect:
            raise ProblemSetsDiffer(_differ_message(a, b, dataset, in_a, in_b))
        both = in_a & in_b
        kept[dataset] = _Kept(both, DatasetKept(dataset=dataset, kept=len(both), in_a=len(in_a), in_b=len(in_b)))
    return kept


def _differ_message(a: RunScores, b: RunScores, dataset: str, in_a: set[str], in_b: set[str]) -> str:
    def some(ids: set[str]) -> str:
        listed = sorted(ids)
        return ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")

    parts = [f"{len(in_a)} problems in {a.run_dir}, {len(in_b)} in {b.run_dir}, {len(in_a & in_b)} in both"]
    if in_a - in_b:
        parts.append(f"only in the first: {some(in_a - in_b)}")
    if in_b - in_a:
        parts.append(f"only in the second: {some(in_b - in_a)}")
    return (
        f"the runs evaluated different problems in dataset {dataset!r} ({'; '.join(parts)}): a paired "
        f"comparison needs the same problems; pass --intersect to compare the {len(in_a & in_b)} both have"
    )


def _changed(a: float, b: float) -> bool:
    return a != b and not (math.isnan(a) and math.isnan(b))


def _budgets(table: ScoreTable) -> set[int]:
    return {b for samples in table.values() for cells in samples.values() for b in cells if b is not None}


__all__ = [
    "BudgetDifference",
    "CellComparison",
    "DatasetKept",
    "ProblemChange",
    "ProblemSetsDiffer",
    "RunComparison",
    "RunScores",
    "compare_cell",
    "compare_scores",
]
