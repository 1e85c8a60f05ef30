"""Anytime metrics: paper.md §2.1's worked examples, edge cases, intervals, paired differences."""

from __future__ import annotations

import pytest

from runner.analysis.anytime import anytime_index, paired_difference, running_best, summarize

BUDGETS = (512, 1024, 2048, 4096)


def _table(curves: dict[str, list[list[float]]], budgets=BUDGETS, full: float | None = None) -> dict:
    """problem -> list of per-sample curves -> ScoreTable."""
    table: dict = {}
    for problem, samples in curves.items():
        table[problem] = {}
        for s, curve in enumerate(samples):
            cells = dict(zip(budgets, curve, strict=True))
            if full is not None:
                cells[None] = full
            table[problem][s] = cells
    return table


def test_worked_example_fast_model() -> None:
    assert anytime_index(BUDGETS, [0.30, 0.55, 0.50, 0.70]) == pytest.approx(57.5)


def test_worked_example_slow_model() -> None:
    assert anytime_index(BUDGETS, [0.0, 0.0, 0.10, 0.70]) == pytest.approx(100 * 870.4 / 3584)
    assert anytime_index(BUDGETS, [0.0, 0.0, 0.10, 0.70]) == pytest.approx(24.29, abs=0.01)


def test_one_budget_is_its_quality() -> None:
    assert anytime_index([1024], [0.4]) == pytest.approx(40.0)


def test_flat_curve_is_its_level() -> None:
    assert anytime_index(BUDGETS, [0.6] * 4) == pytest.approx(60.0)
    assert anytime_index(BUDGETS, [0.0] * 4) == 0.0 and anytime_index(BUDGETS, [1.0] * 4) == pytest.approx(100.0)


def test_non_monotone_curve_uses_the_running_best() -> None:
    assert running_best([0.5, 0.2, 0.7, 0.1]) == [0.5, 0.5, 0.7, 0.7]
    assert anytime_index(BUDGETS, [0.5, 0.2, 0.7, 0.1]) == anytime_index(BUDGETS, [0.5, 0.5, 0.7, 0.7])


def test_raw_budget_axis_weights_late_intervals() -> None:
    early = anytime_index(BUDGETS, [0.0, 1.0, 1.0, 1.0])
    late = anytime_index(BUDGETS, [0.0, 0.0, 0.0, 1.0])
    assert early == pytest.approx(100 * (256 + 1024 + 2048) / 3584)
    assert late == pytest.approx(100 * 1024 / 3584)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one quality per budget"):
        anytime_index(BUDGETS, [0.1])
    with pytest.raises(ValueError, match="strictly increasing"):
        anytime_index([512, 512], [0.1, 0.2])


def test_summary_means_over_problems_and_samples() -> None:
    table = _table({"p1": [[0, 1, 1, 1], [0, 0, 1, 1]], "p2": [[0, 0, 0, 1], [0, 0, 0, 0]]}, full=1.0)
    s = summarize(table, BUDGETS)
    assert s.quality == pytest.approx((0.0, 0.25, 0.5, 0.75))
    assert s.final.value == pytest.approx(0.75) and s.full is not None and s.full.value == 1.0
    assert s.anytime_index.value == pytest.approx(anytime_index(BUDGETS, [0, 0.25, 0.5, 0.75]))
    assert (s.problems, s.samples, s.mode) == (2, 4, "mean_then_max")


def test_per_problem_mode_keeps_an_answer_once_right() -> None:
    # each problem is right once, at different budgets; the mean curve never reaches 1
    table = _table({"p1": [[1, 0, 0, 0]], "p2": [[0, 0, 0, 1]]})
    mean_first = summarize(table, BUDGETS, "mean_then_max").anytime_index.value
    per_problem = summarize(table, BUDGETS, "per_problem").anytime_index.value
    assert mean_first == pytest.approx(50.0)
    assert per_problem == pytest.approx((100.0 + 100 * 1024 / 3584) / 2)
    assert per_problem > mean_first


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    curves = {f"p{i}": [[0, i % 2, i % 3 > 0, 1]] for i in range(20)}
    table = _table(curves)
    a, b = summarize(table, BUDGETS, seed=1), summarize(table, BUDGETS, seed=1)
    assert a == b
    ai = a.anytime_index
    assert ai.lo is not None and ai.hi is not None and ai.lo <= ai.value <= ai.hi and ai.lo < ai.hi


def test_single_problem_has_no_interval() -> None:
    s = summarize(_table({"p": [[0, 1, 1, 1]]}), BUDGETS)
    assert s.anytime_index.lo is None and s.anytime_index.hi is None


def test_paired_difference_on_common_problems() -> None:
    pdp = _table({f"p{i}": [[1, 1, 1, 1]] for i in range(10)} | {"only_pdp": [[0, 0, 0, 0]]})
    cot = _table({f"p{i}": [[0, 0, 1, 1]] for i in range(10)})
    diff = paired_difference(pdp, cot, BUDGETS, labels=("pdp", "cot"))
    assert diff is not None and diff.problems == 10 and (diff.a, diff.b) == ("pdp", "cot")
    expected = 100.0 - anytime_index(BUDGETS, [0, 0, 1, 1])
    # every problem moves the same way, so the interval collapses on the estimate
    assert diff.anytime_index.value == pytest.approx(expected)
    assert diff.anytime_index.lo == pytest.approx(expected) and diff.anytime_index.hi == pytest.approx(expected)
    assert diff.final.value == 0.0
    assert paired_difference(pdp, _table({"x": [[0, 0, 0, 0]]}), BUDGETS) is None
