"""The curves of one cell for a chart: Q(b) with a 95% bootstrap band at every budget, the running
best, and the dollars per problem it took to reach each budget.

Same conventions as `runner.analysis.anytime`: the problem is the unit (its samples averaged
first), intervals are percentile bootstraps over problems with the run's seed, so a chart and the
report always agree on Q(b).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial

import msgspec

from runner.analysis.anytime import (
    BOOTSTRAP_RESAMPLES,
    Interval,
    ScoreTable,
    _percentile,
    problem_means,
    running_best,
)
from runner.analysis.traces import TraceRow


class CurvePoint(msgspec.Struct, frozen=True, kw_only=True):
    budget: int
    quality: Interval  # mean quality over problems (0..1) with its 95% band
    running_best: float  # max quality at this budget or any smaller one
    usd_per_problem: float | None  # mean dollars per problem to reach this budget (None: no trace)


class CellCurve(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    dataset: str
    method: str
    points: list[CurvePoint]
    problems: int


def _column_mean(rows: Sequence[Sequence[float]], column: int) -> float:
    values = [row[column] for row in rows if not math.isnan(row[column])]
    return sum(values) / len(values) if values else math.nan


Statistic = Callable[[Sequence[Sequence[float]]], float]


def joint_bootstrap(rows: Sequence[Sequence[float]], statistics: Sequence[Statistic], seed: int = 0) -> list[Interval]:
    """Each statistic over the problem rows with its 95% percentile interval, from one set of
    resamples shared by all of them (a curve's band is drawn from whole resampled curves).

    As `runner.analysis.anytime.bootstrap` for each statistic, at one draw of the rows instead of
    one per statistic: a band over k budgets costs one bootstrap, not k.
    """
    values = [statistic(rows) for statistic in statistics]
    if len(rows) < 2:
        return [Interval(v) for v in values]
    rng = random.Random(seed)
    draws: list[list[float]] = [[] for _ in statistics]
    for _ in range(BOOTSTRAP_RESAMPLES):
        sample = rng.choices(rows, k=len(rows))
        for statistic, drawn in zip(statistics, draws, strict=True):
            drawn.append(statistic(sample))
    intervals = []
    for value, drawn in zip(values, draws, strict=True):
        kept = sorted(d for d in drawn if not math.isnan(d))
        lo, hi = (_percentile(kept, 0.025), _percentile(kept, 0.975)) if kept else (None, None)
        intervals.append(Interval(value, lo, hi))
    return intervals


def quality_bands(table: ScoreTable, budgets: Sequence[int], seed: int = 0) -> list[Interval]:
    """Q(b) with its 95% percentile bootstrap interval at each budget (resampling problems)."""
    means = problem_means(table, budgets)
    rows = [means[p] for p in sorted(means)]  # sorted: the same ledger gives the same band
    return joint_bootstrap(rows, [partial(_column_mean, column=t) for t in range(len(budgets))], seed)


def usd_per_problem(rows: Sequence[TraceRow], budgets: Sequence[int]) -> list[float | None]:
    """Mean over problems (samples averaged first) of the dollars each trace took to reach a budget."""
    per_problem: defaultdict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in budgets])
    for row in rows:
        for t, budget in enumerate(budgets):
            cut = row.cut_at(budget)
            if cut is not None:
                per_problem[row.problem_id][t].append(cut.usd_to_here)
    out: list[float | None] = []
    for t in range(len(budgets)):
        problem_costs = [sum(c[t]) / len(c[t]) for c in per_problem.values() if c[t]]
        out.append(sum(problem_costs) / len(problem_costs) if problem_costs else None)
    return out


def cell_curve(
    key: tuple[str, str, str], table: ScoreTable, budgets: Sequence[int], rows: Sequence[TraceRow], seed: int = 0
) -> CellCurve:
    """The chart data of one (model, dataset, method) cell; ``rows`` are that cell's traces."""
    bands = quality_bands(table, budgets, seed)
    best = running_best([0.0 if math.isnan(b.value) else b.value for b in bands])
    dollars = usd_per_problem(rows, budgets)
    return CellCurve(
        model=key[0],
        dataset=key[1],
        method=key[2],
        points=[
            CurvePoint(budget=b, quality=band, running_best=top, usd_per_problem=usd)
            for b, band, top, usd in zip(budgets, bands, best, dollars, strict=True)
        ],
        problems=len(table),
    )
