"""Spend the report sets apart: executions a crash or a stop cut short (`usd_interrupted`) and
executions that failed after all their retries (`usd_failed`), of jobs another execution then
completed. The crash matrix (`tests/test_crash_matrix.py`) holds the first to the identity
spend = uninterrupted spend + interrupted; here a run that is never interrupted."""

from __future__ import annotations

from pathlib import Path

from anytime_sim import SimConfig
from anytime_sim.faults import FaultRates
from runner.analysis.report import build_report
from runner.cli import main
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone
from tests.reliability import AIME
from tests.reliability.crashes import reused_sources
from tests.reliability.simhost import SimHost

MANIFEST = """
[run]
name = "failing"
ledger_dir = "{ledgers}"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
base_url = "{url}/v1"
max_attempts = 1
max_concurrency = 8

[models.weak]
provider = "sim"
model = "sim-cot-small"
fidelity = "content"

[datasets.aime]
kind = "aime"
path = "{data}"
limit = 12

[sweep]
budgets = [32, 64, 128]
"""


def test_a_failed_execution_is_not_spend_lost_to_interruption(tmp_path: Path) -> None:
    # one attempt a call and 5xx on a third of them: jobs fail; one simulator for every rerun
    # (its fault draws go on), so each rerun completes some of them, until all are done
    config = SimConfig(time_scale=0.0, chunk_tokens=16, faults=FaultRates(error_5xx=0.3))
    with SimHost([config], [("aime", AIME)]) as host:
        manifest = tmp_path / "failing.toml"
        manifest.write_text(MANIFEST.format(ledgers=tmp_path / "ledgers", url=host.urls[0], data=AIME))
        codes = [main(["run", str(manifest), "--yes", "--plain", "--no-report"])]
        while codes[-1] != 0 and len(codes) < 20:
            codes.append(main(["run", str(manifest), "--yes", "--plain", "--no-report"]))
    assert codes[0] == 1 and codes[-1] == 0  # jobs failed, and reruns completed them
    run_dir = tmp_path / "ledgers" / "failing"
    records = list(iter_records(run_dir))
    completing = {r.instance for r in records if isinstance(r, JobDone)}
    attempts = [r for r in records if isinstance(r, Attempt)]
    paid_by_failed = sum(a.usd for a in attempts if a.instance not in completing)
    # the rerun takes what a failed execution completed (its trace) instead of paying again: not lost
    used = {(a.call_id, a.attempt) for a in reused_sources(records)}
    wasted = sum(a.usd for a in attempts if a.instance not in completing and (a.call_id, a.attempt) not in used)
    (run,) = build_report([run_dir]).runs
    assert paid_by_failed > 0  # the failed executions had paid calls before the one that failed
    assert run.usd_interrupted == 0.0  # nothing was interrupted: no crash, no stop
    assert abs(run.usd_failed - wasted) <= 1e-9
    assert abs(run.usd_total - paid_by_failed - sum(a.usd for a in attempts if a.instance in completing)) <= 1e-9
