"""One vocabulary (#12.11): a *call* is one request a job decided to make; its *attempts* are what
was sent for it, retries included. `ledger summary`, the report, `verify` and the estimate count
the same calls and the same attempts of one ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.config.manifest import load_manifest
from runner.ledger.estimate import estimate_manifest
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt
from tests.conftest import DATA

MANIFEST = """
[run]
name = "vocab"
seed = 5
ledger_dir = "{ledgers}"

[providers.sim]
kind = "sim"
max_attempts = 8

[models.cot]
provider = "sim"
model = "sim-cot-small"

[datasets.aime]
kind = "aime"
path = "{data}/aime_2024.jsonl"
limit = 4

[sweep]
budgets = [64, 128, 256]

[simulator]
time_scale = 0
faults = {{ error_5xx = 0.3 }}
"""


def test_calls_and_attempts_mean_the_same_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.toml"
    path.write_text(MANIFEST.format(ledgers=tmp_path / "ledgers", data=DATA))
    assert main(["run", str(path), "--yes", "--plain"]) == 0
    run_dir = tmp_path / "ledgers" / "vocab"
    attempts = [r for r in iter_records(run_dir) if isinstance(r, Attempt)]
    calls = len({a.call_id for a in attempts})
    assert len(attempts) > calls  # the 5xx faults made retries: the two words now differ
    capsys.readouterr()

    assert main(["ledger", "summary", str(run_dir), "--json"]) == 0
    total = json.loads(capsys.readouterr().out)[-1]
    assert sum(total["calls"].values()) == calls
    assert sum(total["attempts"].values()) == len(attempts)
    assert main(["ledger", "summary", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "retries" in table and "calls: requests a job decided to make" in table

    report = json.loads((run_dir / "report.json").read_text())
    (cell,) = report["runs"][0]["cells"]
    assert (cell["calls"], cell["attempts"], cell["retries"]) == (calls, len(attempts), len(attempts) - calls)

    assert main(["ledger", "verify", str(run_dir)]) == 0
    assert f"{len(attempts)} attempts" in capsys.readouterr().out

    # the estimate calibrated on this ledger expects as many calls as it made, and prices its
    # rate-limit time on the attempts (a provider's requests per minute count retries too)
    estimate = estimate_manifest(load_manifest(path), previous=[run_dir], remaining=False)
    (row,) = estimate.rows
    assert row.calls.expected == pytest.approx(calls)
    assert row.attempts_expected == pytest.approx(len(attempts))
    (lane,) = estimate.lanes
    assert (lane.calls, lane.attempts) == (pytest.approx(calls), pytest.approx(len(attempts)))
    again = tmp_path / "again.toml"  # the same sweep as a new run: nothing of it is done yet
    again.write_text(path.read_text().replace('name = "vocab"', 'name = "again"'))
    assert main(["estimate", str(again), "--from", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{len(attempts)} attempts with retries" in out
