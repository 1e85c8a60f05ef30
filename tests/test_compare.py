"""`anytime report A B --compare`: per-cell B − A in Q(b) and the Anytime Index, paired by problem,
refused over different problem sets unless --intersect; and the statistics behind it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from runner.analysis.anytime import anytime_index, curve_bands
from runner.analysis.compare import compare_cell
from runner.analysis.report import compare_runs
from runner.cli import main
from runner.ui.report import comparison_notes
from tests.conftest import write_manifest

BUDGETS = (100, 200, 400)


def table(scores: dict[str, tuple[float, ...]]) -> dict[str, dict[int, dict[int | None, float]]]:
    """One sample per problem, a score per budget."""
    return {p: {0: dict(zip(BUDGETS, row, strict=True))} for p, row in scores.items()}


def test_identical_tables_differ_by_exactly_nothing() -> None:
    a = table({"p1": (0, 1, 1), "p2": (0, 0, 1), "p3": (1, 1, 1)})
    cell = compare_cell(a, a, BUDGETS, ("m", "d", "cot"))
    assert cell.problems == 3 and cell.changed == ()
    for d in cell.quality:
        assert (d.difference.value, d.difference.lo, d.difference.hi) == (0.0, 0.0, 0.0) and d.a == d.b
    assert cell.anytime_index.value == 0.0 and cell.anytime_index_a == cell.anytime_index_b


def test_differences_are_b_minus_a_paired_by_problem() -> None:
    a = table({"p1": (0, 0, 1), "p2": (0, 0, 0), "p3": (1, 1, 1), "p4": (0, 1, 1)})
    b = table({"p1": (1, 1, 1), "p2": (0, 0, 0), "p3": (1, 1, 1), "p4": (0, 1, 1), "extra": (1, 1, 1)})
    cell = compare_cell(a, b, BUDGETS, ("m", "d", "cot"))
    assert cell.problems == 4  # "extra" has no partner
    assert [d.difference.value for d in cell.quality] == [0.25, 0.25, 0.0]
    assert [(c.problem_id, c.budget, c.a, c.b) for c in cell.changed] == [("p1", 100, 0.0, 1.0), ("p1", 200, 0.0, 1.0)]
    expected = anytime_index(BUDGETS, [0.5, 0.75, 0.75]) - anytime_index(BUDGETS, [0.25, 0.5, 0.75])
    assert cell.anytime_index.value == pytest.approx(expected)
    # paired: only p1 moved, so no resample can make B worse than A, nor better than one problem in four
    low, high = cell.quality[0].difference.lo, cell.quality[0].difference.hi
    assert low is not None and high is not None and 0.0 <= low <= 0.25 <= high <= 1.0


def test_curve_bands_hold_the_curve_and_the_running_best() -> None:
    scores = table({f"p{i}": (i % 2, (i % 3 > 0) * 1.0, 1.0 * (i > 2)) for i in range(8)})
    bands = curve_bands(scores, BUDGETS)
    for q in (*bands.quality, *bands.running_best):
        assert q.lo is not None and q.hi is not None and q.lo <= q.value <= q.hi
    best = [q.value for q in bands.running_best]
    assert best == sorted(best) and math.isclose(best[0], bands.quality[0].value)


MANIFEST = """
[run]
name = "{name}"
seed = {seed}
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 16

[models.raw]
provider = "sim"
model = "sim-reasoner-large"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = {limit}

[sweep]
budgets = [128, 512, 1024]
samples = 2

[simulator]
time_scale = 0.0
chunk_tokens = 4
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    out = {}
    for name, seed, limit in (("a", 1, 5), ("b", 2, 5), ("fewer", 3, 3)):
        manifest = write_manifest(tmp, MANIFEST.format(name=name, seed=seed, limit=limit), name=f"{name}.toml")
        assert main(["run", str(manifest), "--yes", "--plain", "--no-report", "--no-transcripts"]) == 0
        out[name] = tmp / "ledgers" / name
    return out


def test_report_compare_prints_paired_differences(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(runs["a"]), str(runs["b"]), "--compare"]) == 0
    out = capsys.readouterr().out
    assert "b − a · aime: paired differences" in out and "paired 95% bootstrap intervals" in out
    comparison = compare_runs(runs["a"], runs["b"])
    (cell,) = comparison.cells
    assert cell.problems == 5 and [d.budget for d in cell.quality] == [128, 512, 1024]
    markdown = (runs["a"] / "report.md").read_text()
    assert "# b − a" not in markdown  # each run's own report files stay its own


def test_different_problem_sets_are_refused_without_intersect(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(runs["a"]), str(runs["fewer"]), "--compare"]) == 2
    err = capsys.readouterr().err
    assert "different problems in dataset 'aime'" in err and "5 problems in" in err and "--intersect" in err
    assert main(["report", str(runs["a"]), str(runs["fewer"]), "--compare", "--intersect", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (comparison,) = report["comparisons"]
    assert comparison["datasets"] == [{"dataset": "aime", "kept": 3, "in_a": 5, "in_b": 3}]
    assert comparison["cells"][0]["problems"] == 3
    notes = comparison_notes(compare_runs(runs["a"], runs["fewer"], intersect=True))
    assert "aime: kept the 3 problems both runs have (5 in a, 3 in fewer)." in notes


def test_a_run_against_itself_changes_nothing(runs: dict[str, Path]) -> None:
    (cell,) = compare_runs(runs["a"], runs["a"]).cells
    assert cell.changed == () and all(d.difference.value == 0.0 for d in cell.quality)


def test_intersect_needs_compare(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(runs["a"]), "--intersect"]) == 2
    assert "--intersect only applies with --compare" in capsys.readouterr().err
