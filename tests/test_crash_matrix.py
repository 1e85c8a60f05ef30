"""Issue 12's crash matrix: `kill -9` of a real `anytime run` at 20 random moments of a run of
more than 2,000 calls (and a Ctrl-C's SIGINT at 2 more), resuming each time, then the run held
to an uninterrupted one.

The simulator runs in a process of its own; each sweep runs in a subprocess that reaches it
through a loopback proxy in this test's event loop. The proxy counts the bytes the simulator
streams back and sends SIGKILL the moment the count passes a point drawn from the seed, so the
kills land in the middle of streams, ledger batches and synthesis stages alike, spread over the
run, with no sleeping and no timing assumptions. The seed is printed (and set with
``ANYTIME_CRASH_SEED``) so that a failure reproduces.

After the last resume (`tests/reliability/crashes.py`, `check_crash_run`): every line parses and
`anytime ledger verify` passes (every dollar recomputes, no duplicate attempt, no job completed
twice); no attempt is lost (every request the simulator received is on record); the quality
figures equal the uninterrupted run's; the spend equals the uninterrupted spend plus what the
interrupted executions cost (`RunReport.usd_interrupted`), to 1e-6 $, once the streams the client
cancelled past their last budget are held call by call (they bill what had arrived, a read's worth
of tokens that depends on timing), less the calls a resume reused from those the killed processes
had completed (docs/reuse.md: they are in the interrupted spend and not paid again); and the total the last
process printed is the report's and verify's, to 1e-6 $. `bench/soak.py` runs the long version.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.cli import main
from runner.ledger.reader import load_state
from tests.reliability.crashes import CrashPlan, run_crash_matrix

SEED = int(os.environ.get("ANYTIME_CRASH_SEED", "12"))
# 2 models x 2 methods x 20 problems x 7 samples: 560 jobs, about 2,300 calls
PLAN = CrashPlan(seed=SEED, kills=20, stops=2, problems=20, samples=7)


@pytest.mark.slow
async def test_kill_9_at_20_random_moments_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\ncrash matrix: seed {SEED} (ANYTIME_CRASH_SEED={SEED} reproduces the kill moments)")
    figures = await run_crash_matrix(tmp_path, PLAN)
    assert (figures.kills, figures.stops) == (PLAN.kills, PLAN.stops)
    assert figures.attempts >= 2000 and figures.lost == 0
    assert figures.recovered > 0 and figures.usd_interrupted > 0  # the kills did cut paid work short
    run_dir = tmp_path / "ledgers" / "crashed"
    assert main(["ledger", "verify", str(run_dir)]) == 0
    assert load_state(run_dir).total_usd == pytest.approx(figures.usd_total, abs=1e-6)
