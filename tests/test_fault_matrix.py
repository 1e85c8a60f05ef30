"""Issue 12's fault matrix at run scale: one sweep of more than 2,000 calls with a lane per cell,
each lane on a simulator of its own (in a process of its own) that injects one kind of fault
(5xx, 429 storms, drops mid-stream, malformed SSE, stalls, slow trickles, connection resets) or
all of them mixed.

Every job completes once, `verify` is clean, and every lane's ledger equals its simulator's own
counts for its key: requests, 429s, faults refused before the stream, billed prompt tokens, and
the provider-reported usage of every attempt that read one; each lane suffered its cell's faults
and the ledger shows each (`tests/reliability/faults.py`). The long version (every cell at 2,000 calls
or more) is `bench/soak.py`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from runner.cli import main
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt
from tests.conftest import write_manifest
from tests.reliability.faults import fault_cells, run_fault_matrix

PROBLEMS, SAMPLES = 14, 2  # x 8 lanes x 2 models = 448 jobs, about 2,100 calls


def test_every_fault_alone_and_mixed_at_run_scale(tmp_path: Path) -> None:
    figures = run_fault_matrix(tmp_path, fault_cells(), problems=PROBLEMS, samples=SAMPLES)
    assert figures.attempts >= 2000 and figures.lost == figures.double == 0
    assert sum(figures.injected().values()) >= 240  # ~300 expected; the count moves with request order


STORMY = """
[run]
name = "stormy"
ledger_dir = "@LEDGERS@"

[providers.sim]
kind = "sim"
max_attempts = 1
max_concurrency = 8

[models.weak]
provider = "sim"
model = "sim-cot-small"
fidelity = "content"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 30

[sweep]
budgets = [32, 64, 128]

[simulator]
time_scale = 0.0
chunk_tokens = 16
faults = { rate_limit_storm = 0.05, storm_seconds = 0.05 }
"""


def test_a_429_storm_never_fails_a_job_while_the_call_has_time(tmp_path: Path) -> None:
    # one attempt a call, and 429 storms: a 429 is a wait, not an attempt, so no job fails
    assert main(["run", str(write_manifest(tmp_path, STORMY)), "--yes", "--plain", "--no-report"]) == 0
    attempts = [r for r in iter_records(tmp_path / "ledgers" / "stormy") if isinstance(r, Attempt)]
    refused = Counter(a.call_id for a in attempts if a.error_class == "rate_limit")
    assert refused and max(refused.values()) >= 1  # calls met 429s, and went on past them
