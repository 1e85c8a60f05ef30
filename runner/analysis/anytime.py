"""Anytime metrics: quality per budget, the Anytime Index, bootstrap intervals, paired differences.

Definitions (paper.md §2.1 and §8):

- Quality at budget b_t: the mean score over problems, where a problem's score is the mean over
  its samples. The problem is the unit, so a problem with a missing sample still weighs one.
- Anytime Index, ``mean_then_max`` (the default): take the mean curve Q_t, then the running best
  Q*_t = max_{i<=t} Q_i, then the trapezoid over the raw budgets from b_1 to b_T, divided by
  (b_T - b_1) * Q_max with Q_max = 1, times 100.
- ``per_problem``: the running best is taken on each problem's curve (mean over its samples)
  before averaging; an answer once right stays right, so it is never below ``mean_then_max``.
- One budget: there is no interval to integrate over; the index is the (running best) quality
  at that budget times 100, the limit of the trapezoid as b_T approaches b_1.
- Final quality: the mean quality at the last budget (no running best). Full-trace quality: the
  mean over the untruncated traces (budget ``None``).
- Intervals: percentile bootstrap over problems (resampled with replacement), seeded, so the same
  ledger always gives the same interval. Paired differences resample the problems both methods
  have, jointly, so the interval reflects the per-problem pairing.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Literal

import msgspec

Mode = Literal["mean_then_max", "per_problem"]
# problem id -> sample -> budget (None: the full trace) -> score in [0, 1]
ScoreTable = Mapping[str, Mapping[int, Mapping[int | None, float]]]

BOOTSTRAP_RESAMPLES = 1000


class Interval(msgspec.Struct, frozen=True):
    """A point estimate with its 95% bootstrap interval (``lo``/``hi`` None for fewer than 2 problems)."""

    value: float
    lo: float | None = None
    hi: float | None = None


class CurveSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the report shows for one (model, method, dataset) cell."""

    budgets: tuple[int, ...]
    quality: tuple[float, ...]  # mean quality at each budget (0..1)
    anytime_index: Interval  # x100
    mode: Mode
    final: Interval  # quality at the last budget
    full: Interval | None  # quality of the untruncated traces, when recorded
    problems: int
    samples: int  # (problem, sample) traces counted


def running_best(values: Sequence[float]) -> list[float]:
    """Q*_t = max_{i<=t} Q_i."""
    best: list[float] = []
    for value in values:
        best.append(value if not best else max(best[-1], value))
    return best


def anytime_index(budgets: Sequence[int], quality: Sequence[float], q_max: float = 1.0) -> float:
    """The Anytime Index x100 of one quality curve (the running best is applied here).

    Raises:
        ValueError: budgets and quality differ in length, are empty, or budgets do not increase.
    """
    if len(budgets) != len(quality) or not budgets:
        raise ValueError(f"need one quality per budget, got {len(budgets)} budgets and {len(quality)} values")
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(budgets)):
        raise ValueError(f"budgets must be strictly increasing, got {list(budgets)}")
    best = running_best(quality)
    if len(budgets) == 1:
        return 100.0 * best[0] / q_max
    area = sum((best[t] + best[t + 1]) / 2 * (budgets[t + 1] - budgets[t]) for t in range(len(budgets) - 1))
    return 100.0 * area / ((budgets[-1] - budgets[0]) * q_max)


def problem_means(table: ScoreTable, budgets: Sequence[int | None]) -> dict[str, list[float]]:
    """Each problem's mean score over its samples at each budget (NaN where no sample has one)."""
    means: dict[str, list[float]] = {}
    for problem, samples in table.items():
        row: list[float] = []
        for budget in budgets:
            values = [cells[budget] for cells in samples.values() if budget in cells]
            row.append(sum(values) / len(values) if values else math.nan)
        means[problem] = row
    return means


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _curve(rows: Sequence[Sequence[float]], width: int) -> list[float]:
    return [_mean([row[t] for row in rows]) for t in range(width)]


def quality_curve(rows: Sequence[Sequence[float]], width: int) -> list[float]:
    """Q at each of ``width`` budgets: the mean over problem rows (rows from `problem_means`)."""
    return _curve(rows, width)


@lru_cache(maxsize=1 << 16)
def _row_index(budgets: tuple[int, ...], row: tuple[float, ...]) -> float:
    # the bootstrap redraws the same problem rows many times: each row's index is computed once
    return anytime_index(budgets, [0.0 if math.isnan(v) else v for v in row])


def rows_index(rows: Sequence[Sequence[float]], budgets: Sequence[int], mode: Mode) -> float:
    """The Anytime Index x100 of problem rows (from `problem_means`) in ``mode``."""
    return _index(rows, budgets, mode)


def _index(rows: Sequence[Sequence[float]], budgets: Sequence[int], mode: Mode) -> float:
    if mode == "per_problem":
        return _mean([_row_index(tuple(budgets), tuple(row)) for row in rows])
    curve = _curve(rows, len(budgets))
    return anytime_index(budgets, [0.0 if math.isnan(v) else v for v in curve])


def bootstrap(
    rows: Sequence[Sequence[float]],
    statistic: Callable[[Sequence[Sequence[float]]], float],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Interval:
    """``statistic`` over the problem rows, with a 95% percentile interval from resampling rows."""
    value = statistic(rows)
    if len(rows) < 2:
        return Interval(value)
    rng = random.Random(seed)
    n = len(rows)
    draws = sorted(statistic([rows[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    draws = [d for d in draws if not math.isnan(d)]
    if not draws:
        return Interval(value)
    return Interval(value, _percentile(draws, 0.025), _percentile(draws, 0.975))


def bootstrap_many(
    rows: Sequence[Sequence[float]],
    statistic: Callable[[Sequence[Sequence[float]]], Sequence[float]],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[Interval, ...]:
    """Several statistics over the same resamples (one per budget, say), each with its 95% interval.

    The same draws serve every statistic, so a curve's band is as one resampling saw it.
    """
    values = list(statistic(rows))
    if len(rows) < 2:
        return tuple(Interval(v) for v in values)
    rng = random.Random(seed)
    n = len(rows)
    draws = [statistic([rows[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples)]
    intervals = []
    for i, value in enumerate(values):
        column = sorted(d[i] for d in draws if not math.isnan(d[i]))
        if not column:
            intervals.append(Interval(value))
        else:
            intervals.append(Interval(value, _percentile(column, 0.025), _percentile(column, 0.975)))
    return tuple(intervals)


class CurveBands(msgspec.Struct, frozen=True, kw_only=True):
    """Q(b) and its running best at every budget, each with a 95% bootstrap interval over problems."""

    budgets: tuple[int, ...]
    quality: tuple[Interval, ...]
    running_best: tuple[Interval, ...]


def curve_bands(table: ScoreTable, budgets: Sequence[int], seed: int = 0) -> CurveBands:
    """The bands a plot draws around a cell's Q(b) and running-best curves."""
    budgets = tuple(budgets)
    means = problem_means(table, budgets)
    rows = [means[p] for p in sorted(means)]
    width = len(budgets)

    def both(r: Sequence[Sequence[float]]) -> list[float]:
        curve = _curve(r, width)
        return [*curve, *running_best([0.0 if math.isnan(v) else v for v in curve])]

    intervals = bootstrap_many(rows, both, seed)
    return CurveBands(budgets=budgets, quality=intervals[:width], running_best=intervals[width:])


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(table: ScoreTable, budgets: Sequence[int], mode: Mode = "mean_then_max", seed: int = 0) -> CurveSummary:
    """Quality per budget, Anytime Index, final and full-trace quality, with bootstrap intervals."""
    budgets = tuple(budgets)
    means = problem_means(table, [*budgets, None])
    ordered = [means[p] for p in sorted(means)]  # sorted: the bootstrap must not depend on dict order
    rows = [row[:-1] for row in ordered]
    full_rows = [[row[-1]] for row in ordered if not math.isnan(row[-1])]
    return CurveSummary(
        budgets=budgets,
        quality=tuple(_curve(rows, len(budgets))),
        anytime_index=bootstrap(rows, lambda r: _index(r, budgets, mode), seed),
        mode=mode,
        final=bootstrap(rows, lambda r: _mean([row[-1] for row in r]), seed),
        full=bootstrap(full_rows, lambda r: _mean([row[0] for row in r]), seed) if full_rows else None,
        problems=len(rows),
        samples=sum(len(s) for s in table.values()),
    )


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    """A − B on the problems both have: Anytime Index (points) and final quality, with intervals."""

    a: str
    b: str
    problems: int
    anytime_index: Interval
    final: Interval


def paired_difference(
    a: ScoreTable,
    b: ScoreTable,
    budgets: Sequence[int],
    mode: Mode = "mean_then_max",
    seed: int = 0,
    labels: tuple[str, str] = ("a", "b"),
) -> Difference | None:
    """The paired difference A − B (e.g. PDP − CoT) over the problems both tables hold; None if none."""
    budgets = tuple(budgets)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    ma, mb = problem_means(a, budgets), problem_means(b, budgets)
    # a row holds A's curve then B's, so one resample draws the same problems for both
    rows = [ma[p] + mb[p] for p in common]
    width = len(budgets)

    def split(r: Sequence[Sequence[float]]) -> tuple[list[Sequence[float]], list[Sequence[float]]]:
        return [row[:width] for row in r], [row[width:] for row in r]

    def index_gap(r: Sequence[Sequence[float]]) -> float:
        ra, rb = split(r)
        return _index(ra, budgets, mode) - _index(rb, budgets, mode)

    def final_gap(r: Sequence[Sequence[float]]) -> float:
        ra, rb = split(r)
        return _mean([row[-1] for row in ra]) - _mean([row[-1] for row in rb])

    return Difference(
        a=labels[0],
        b=labels[1],
        problems=len(common),
        anytime_index=bootstrap(rows, index_gap, seed),
        final=bootstrap(rows, final_gap, seed),
    )
