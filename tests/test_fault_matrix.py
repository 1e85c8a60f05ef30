"""Issue 12's fault matrix at run scale: one sweep of more than 2,000 calls with a lane per cell,
each lane on a simulator of its own (in a process of its own) that injects one kind of fault
(5xx, 429 storms, drops mid-stream, malformed SSE, stalls, slow trickles, connection resets) or
all of them mixed.

Every job completes once, `verify` is clean, and every lane's ledger equals its simulator's own
counts for its key: requests, 429s, faults refused before the stream, billed prompt tokens, and
the provider-reported usage of every attempt that read one; each lane suffered its cell's faults
and the ledger shows each (`tests/reliability.py`). The long version (every cell at 2,000 calls
or more) is `bench/soak.py`.
"""

from __future__ import annotations

from pathlib import Path

from tests.reliability import fault_cells, run_fault_matrix

PROBLEMS, SAMPLES = 14, 2  # x 8 lanes x 2 models = 448 jobs, about 2,100 calls


def test_every_fault_alone_and_mixed_at_run_scale(tmp_path: Path) -> None:
    figures = run_fault_matrix(tmp_path, fault_cells(), problems=PROBLEMS, samples=SAMPLES)
    assert figures.attempts >= 2000 and figures.lost == figures.double == 0
    assert sum(figures.injected().values()) >= 300
