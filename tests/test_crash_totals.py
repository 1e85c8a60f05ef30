"""After a `kill -9` that leaves calls streaming, the resumed run's totals and its spend cap count
what those calls had cost: the figure the run prints is the ledger's, the report's and verify's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.analysis.report import build_report
from runner.cli import main
from runner.ledger.audit import verify
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, Note
from tests.conftest import write_manifest

MANIFEST = """
[run]
name = "totals"
ledger_dir = "@LEDGERS@"
max_usd = 5.0
confirm_above_usd = 5.0

[providers.sim]
kind = "sim"
max_concurrency = 4

[models.reasoner]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 4

[sweep]
budgets = [256, 2048]

[simulator]
time_scale = 1.0
chunk_tokens = 4
"""


def kill_when_streaming(manifest: Path, ledger: Path) -> None:
    """Start `anytime run` and SIGKILL it once the ledger holds an in-flight call's spend."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", str(manifest), "--yes", "--plain", "--no-report"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while b'"type":"inflight"' not in (ledger.read_bytes() if ledger.exists() else b""):
            assert process.poll() is None, "the run ended before any call was streaming"
            assert time.monotonic() < deadline, "no in-flight record within 60 s"
            time.sleep(0.05)  # polling a file another process writes; nothing here is timed
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()


@pytest.mark.slow
def test_the_resumed_total_counts_the_last_crashs_in_flight_spend(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, MANIFEST)
    run_dir = tmp_path / "ledgers" / "totals"
    kill_when_streaming(path, run_dir / "ledger.jsonl")
    assert main(["run", str(path), "--yes", "--plain", "--no-report"]) == 0
    records = list(iter_records(run_dir))
    recovered = [r for r in records if isinstance(r, Attempt) and r.error_class == "crash"]
    assert recovered and sum(a.usd for a in recovered) > 0  # the kill did leave paid calls in flight
    printed = [r for r in records if isinstance(r, Note) and r.kind == "run_end"][-1].usd_total
    result = verify(run_dir)
    assert result.ok, result.render()
    assert printed == pytest.approx(result.usd_recorded, abs=1e-6)
    assert printed == pytest.approx(build_report([run_dir]).runs[0].usd_total, abs=1e-6)
