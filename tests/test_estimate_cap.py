"""Issue 5: with `run.max_usd` set to half the estimate, the sweep stops cleanly under the cap."""

from __future__ import annotations

from pathlib import Path

from runner.cli import main as cli
from runner.config.manifest import load_manifest
from runner.ledger.audit import verify
from runner.ledger.estimate import estimate_manifest
from runner.ledger.reader import iter_records, load_state
from runner.ledger.records import Note

DATA = Path(__file__).resolve().parent.parent / "data"

BODY = """
[run]
name = "capped"
seed = 4
ledger_dir = "{ledgers}"
confirm_above_usd = 100.0
{cap}

[providers.sim]
kind = "sim"
max_concurrency = 16

[models.strong]
provider = "sim"
model = "sim-reasoner-large"

[models.weak]
provider = "sim"
model = "sim-cot-small"

[datasets.aime]
kind = "aime"
path = "{data}/aime_2024.jsonl"
limit = 8

[sweep]
budgets = [128, 256, 512, 1024]

[simulator]
time_scale = 0.01
chunk_tokens = 16
"""


def test_half_the_estimate_is_a_cap_that_holds(tmp_path: Path) -> None:
    path = tmp_path / "capped.toml"
    path.write_text(BODY.format(ledgers=tmp_path / "ledgers", data=DATA, cap=""))
    estimate = estimate_manifest(load_manifest(path), previous=[])
    cap = round(estimate.usd_expected / 2, 6)
    path.write_text(BODY.format(ledgers=tmp_path / "ledgers", data=DATA, cap=f"max_usd = {cap}"))
    assert cli(["run", str(path), "--yes", "--plain", "--no-report"]) == 3  # stopped by the cap
    run_dir = tmp_path / "ledgers" / "capped"
    state = load_state(run_dir)
    assert 0 < state.total_usd <= cap
    assert any(isinstance(r, Note) and "max_usd" in r.message for r in iter_records(run_dir))
    assert verify(run_dir).ok
