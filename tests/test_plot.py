"""`anytime plot`: one publication-size figure per dataset in PNG, SVG or PDF, with bands, running
best and quality vs dollars; a clear message without matplotlib."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from runner.analysis.report import build_report
from runner.cli import main
from runner.ui.plot import plot_datasets
from tests.conftest import write_manifest

MANIFEST = """
[run]
name = "p"
seed = 2
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 16

[models.raw]
provider = "sim"
model = "sim-reasoner-large"

[models.cot]
provider = "sim"
model = "sim-cot-small"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 4

[datasets.gpqa]
kind = "gpqa"
path = "@DATA@/gpqa_sample.jsonl"
limit = 3

[sweep]
budgets = [128, 512, 1024]

[simulator]
time_scale = 0.0
chunk_tokens = 4
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("plot")
    assert main(["run", str(write_manifest(tmp, MANIFEST)), "--yes", "--plain", "--no-report"]) == 0
    return tmp / "ledgers" / "p"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_one_publication_size_figure_per_dataset(run_dir: Path, tmp_path: Path) -> None:
    assert main(["plot", str(run_dir), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot-aime.png", "plot-gpqa.png"]
    width, height = png_size(tmp_path / "plot-aime.png")
    assert 1800 <= width <= 2300 and 600 <= height <= 1100  # 7 inches wide at 300 dpi, a row of three panels


def test_vector_formats_keep_their_text(run_dir: Path, tmp_path: Path) -> None:
    report = build_report([run_dir])
    for run in report.runs:  # one dataset is enough here (the CLI test draws both)
        run.cells = [c for c in run.cells if c.dataset == "aime"]
    (svg_path,) = plot_datasets(report, tmp_path, "svg")
    svg = svg_path.read_text()
    for text in ("aime: Q(b), 95% band", "running best Q*(b)", "quality vs dollars", "raw · cot (AI"):
        assert text in svg
    (pdf_path,) = plot_datasets(report, tmp_path, "pdf")
    assert pdf_path.name == "plot-aime.pdf" and pdf_path.read_bytes()[:5] == b"%PDF-"


def test_the_report_holds_what_the_figures_draw(run_dir: Path) -> None:
    for cell in build_report([run_dir]).runs[0].cells:
        assert cell.bands is not None and len(cell.usd_at_budget) == len(cell.summary.budgets) == 3
        for interval, q in zip(cell.bands.quality, cell.summary.quality, strict=True):
            assert interval.value == pytest.approx(q)
        best = [i.value for i in cell.bands.running_best]
        assert best == sorted(best)
        dollars = list(cell.usd_at_budget)
        assert dollars == sorted(dollars) and dollars[0] > 0  # a larger budget never costs less
        assert dollars[-1] <= cell.usd_eval  # one trace answered once costs less than the whole cell


def test_without_matplotlib_the_message_says_how_to_install_it(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["plot", str(run_dir), "--out", str(tmp_path)]) == 2
    assert "pip install 'anytime-runner[plot]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_not_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path)]) == 2
    assert "no ledger.jsonl here" in capsys.readouterr().err
