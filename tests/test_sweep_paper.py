"""The paper's design on the simulator: cot, pdp and pdp_plus over every task family produce the
report, its Markdown and its plot; PDP's synthesis is ledgered, reused on resume, and costed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, Synthesis
from tests.conftest import DATA, REPO


def small_paper_manifest(tmp_path: Path) -> Path:
    text = (REPO / "manifests" / "sim-paper.toml").read_text()
    text = text.replace('"../data/', f'"{DATA}/').replace('ledger_dir = "../ledgers"', f'ledger_dir = "{tmp_path}"')
    text = text.replace("time_scale = 0.05", "time_scale = 0.0")
    for old, new in (
        ("limit = 10", "limit = 2"),
        ("limit = 8", "limit = 2"),
        ("limit = 3", "limit = 2"),
        ("pool = 4", "pool = 2"),
        ("k = 3", "k = 2"),
        ("m = 2", "m = 1"),
    ):
        text = text.replace(old, new)
    text = text.replace('[models.grok-3]\nprovider = "xai"\nmodel = "sim-grok-3"\n', "")
    path = tmp_path / "paper.toml"
    path.write_text(text)
    return path


def test_paper_design_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs the plot extra")
    manifest = small_paper_manifest(tmp_path)
    assert main(["run", str(manifest), "--yes", "--plain"]) == 0
    run_dir = tmp_path / "sim-paper"
    report = json.loads((run_dir / "report.json").read_text())
    cells = report["runs"][0]["cells"]
    assert {(c["dataset"], c["method"]) for c in cells} == {
        (d, m) for d in ("aime", "gpqa", "trip", "calendar", "meeting") for m in ("cot", "pdp", "pdp_plus")
    }
    for cell in cells:
        synthesis = cell["usd_synthesis"]
        assert (synthesis > 0) == (cell["method"] != "cot"), cell
    # the simulator never reads which method built a prompt, and every method of a sample shares its
    # seed (paired design): no method may show an effect on it — every paired difference's interval
    # holds zero
    differences = report["runs"][0]["differences"]
    assert {(d["dataset"], d["method"]) for d in differences} == {
        (ds, m) for ds in ("aime", "gpqa", "trip", "calendar", "meeting") for m in ("pdp", "pdp_plus")
    }
    for d in differences:
        for metric in ("anytime_index", "final"):
            interval = d["difference"][metric]
            assert interval["lo"] <= 0.0 <= interval["hi"], d
    assert (run_dir / "report.md").read_text().count("|") > 50
    assert (run_dir / "anytime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = list(iter_records(run_dir))
    synth = [r for r in records if isinstance(r, Synthesis)]
    assert len(synth) == 5 * 2  # one per (dataset, pdp method) for the one model
    calls_before = sum(isinstance(r, Attempt) for r in records)
    # a rerun reuses the synthesis and every finished job: nothing new is paid
    assert main(["run", str(manifest), "--yes", "--plain"]) == 0
    assert sum(isinstance(r, Attempt) for r in iter_records(run_dir)) == calls_before
