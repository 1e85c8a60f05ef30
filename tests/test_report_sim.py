"""End to end on the simulator: all three NaturalPlan tasks with cot, pdp and pdp_plus give a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, write_manifest

from runner.cli import main as cli_main

MANIFEST = """
[run]
name = "np-sim"
seed = 3
ledger_dir = "@LEDGERS@"
max_usd = 2.0
confirm_above_usd = 2.0

[providers.sim]
kind = "sim"
rpm = 100000
tpm = 100000000

[models.reasoner]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7

[datasets.trip]
kind = "trip"
path = "@DATA@/natural_plan/trip_planning_24.jsonl"
limit = 3
pool = 2
[datasets.calendar]
kind = "calendar"
path = "@DATA@/natural_plan/calendar_scheduling_24.jsonl"
limit = 3
pool = 2
[datasets.meeting]
kind = "meeting"
path = "@DATA@/natural_plan/meeting_planning_24.jsonl"
limit = 3
pool = 2

[methods.cot]
kind = "cot"
[methods.pdp]
kind = "pdp"
k = 2
m = 2
[methods.pdp_plus]
kind = "pdp_plus"
k = 2
m = 2

[sweep]
budgets = [256, 512, 1024]

[simulator]
rpm = 100000
tpm = 100000000
time_scale = 0.001
chunk_tokens = 32
"""


def test_sim_sweep_over_three_tasks_and_three_methods(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert DATA.is_dir()
    manifest = write_manifest(tmp_path, MANIFEST)
    assert cli_main(["run", str(manifest), "--yes"]) == 0
    run_dir = tmp_path / "ledgers" / "np-sim"
    report = json.loads((run_dir / "report.json").read_text())
    (run,) = report["runs"]
    cells = {(c["dataset"], c["method"]) for c in run["cells"]}
    assert cells == {(d, m) for d in ("trip", "calendar", "meeting") for m in ("cot", "pdp", "pdp_plus")}
    for cell in run["cells"]:
        assert cell["summary"]["budgets"] == [256, 512, 1024] and cell["summary"]["problems"] == 3
        assert 0.0 <= cell["summary"]["anytime_index"]["value"] <= 100.0
        assert cell["usd_total"] > 0
        assert (cell["usd_synthesis"] > 0) == (cell["method"] != "cot")
        assert (cell["exact_final"] is not None) == (cell["dataset"] == "trip")
    assert {(p["dataset"], p["method"]) for p in run["differences"]} == {
        (d, m) for d in ("trip", "calendar", "meeting") for m in ("pdp", "pdp_plus")
    }
    markdown = (run_dir / "report.md").read_text()
    assert "## trip" in markdown and "pdp − cot" in markdown and "## Overall" in markdown
    pytest.importorskip("matplotlib")
    assert (run_dir / "anytime.png").read_bytes().startswith(b"\x89PNG")
