"""Two cells compared on the problems both hold: Q_A(b) − Q_B(b) at every budget with a paired
bootstrap interval, the Anytime Index difference, and the problems whose grade changed.

The cells may come from two runs (the same model, dataset and method run twice) or from one
(two models). Pairing is by problem id: one bootstrap draw takes the same problems for A and B,
so the interval reflects the pairing (`runner.analysis.anytime.paired_difference` does the same
for the Anytime Index). Only the budgets both cells have are compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import msgspec

from runner.analysis.anytime import Interval, Mode, ScoreTable, paired_difference, problem_means
from runner.analysis.curves import joint_bootstrap


class BudgetGap(msgspec.Struct, frozen=True, kw_only=True):
    budget: int
    a: float  # Q_A(b) on the common problems (0..1)
    b: float
    difference: Interval  # A − B (0..1) with its paired 95% interval


class ChangedProblem(msgspec.Struct, frozen=True, kw_only=True):
    problem_id: str
    a: list[float | None]  # the problem's mean score at each compared budget (None: no sample there)
    b: list[float | None]


class CellComparison(msgspec.Struct, frozen=True, kw_only=True):
    a: tuple[str, str, str]  # (model, dataset, method)
    b: tuple[str, str, str]
    budgets: list[int]
    problems: int  # in both
    only_a: int
    only_b: int
    gaps: list[BudgetGap]
    anytime_index: Interval | None  # A − B in points
    changed: list[ChangedProblem]


def _col(rows: Sequence[Sequence[float]], column: int) -> float:
    values = [row[column] for row in rows if not math.isnan(row[column])]
    return sum(values) / len(values) if values else math.nan


def _gap(rows: Sequence[Sequence[float]], column: int, width: int) -> float:
    """A's mean minus B's at one budget, on rows holding A's curve then B's."""
    return _col(rows, column) - _col(rows, width + column)


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


def compare_cells(
    a: ScoreTable,
    b: ScoreTable,
    budgets: Sequence[int],
    keys: tuple[tuple[str, str, str], tuple[str, str, str]],
    mode: Mode = "mean_then_max",
    seed: int = 0,
) -> CellComparison:
    """Compare cell A with cell B at ``budgets`` (those both have) over their common problems."""
    common = sorted(set(a) & set(b))
    ma, mb = problem_means(a, budgets), problem_means(b, budgets)
    rows = [ma[p] + mb[p] for p in common]  # one row per problem: A's curve then B's
    width = len(budgets)
    differences = joint_bootstrap(rows, [partial(_gap, column=t, width=width) for t in range(width)], seed)
    gaps = [
        BudgetGap(budget=budget, a=_col(rows, t), b=_col(rows, width + t), difference=differences[t])
        for t, budget in enumerate(budgets)
    ]
    index = paired_difference(a, b, budgets, mode, seed) if budgets else None
    changed = [
        ChangedProblem(problem_id=p, a=[_none(v) for v in ma[p]], b=[_none(v) for v in mb[p]])
        for p in common
        if any(x != y for x, y in zip(ma[p], mb[p], strict=True) if not (math.isnan(x) or math.isnan(y)))
    ]
    return CellComparison(
        a=keys[0],
        b=keys[1],
        budgets=list(budgets),
        problems=len(common),
        only_a=len(set(a) - set(b)),
        only_b=len(set(b) - set(a)),
        gaps=gaps,
        anytime_index=index.anytime_index if index else None,
        changed=changed,
    )
