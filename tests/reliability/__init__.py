"""The reliability suite's machinery (issue 12), shared by `tests/test_fault_matrix.py`,
`tests/test_crash_matrix.py` and `bench/soak.py`, which differ only in scale.

- `simhost`: simulators in a process of their own (one per fault cell, each with its own faults
  and counters), so the sweep under test has a core to itself.
- `faults`: the fault matrix: one sweep with a lane per cell; every lane's ledger is held to the
  simulator's own counts for its key (`anytime_sim.stats`).
- `crashes`: the crash matrix: `kill -9` (and SIGINT) of a real `anytime run` at moments drawn
  from a seed, then the resumed run held to an uninterrupted one.

Every check raises AssertionError naming what failed and returns the figures it measured.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
AIME = REPO / "data" / "aime_2024.jsonl"
# the two models of every matrix: a reasoning model cut in its reasoning, a chain-of-thought one
MODELS = {"raw": ("sim-reasoner-large", "raw"), "cot": ("sim-cot-small", "content")}
