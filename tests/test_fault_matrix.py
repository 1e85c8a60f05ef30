"""Issue 12's fault matrix at run scale: one sweep of more than 2,000 calls with a lane per cell,
each lane on a simulator of its own (in a process of its own) that injects one kind of fault
(5xx, 429 storms, drops mid-stream, malformed SSE, stalls, slow trickles, connection resets) or
all of them mixed.

Every job completes once, `verify` is clean, and every lane's ledger equals its simulator's own
counts for its key: requests, 429s, faults refused before the stream, billed prompt tokens, and
the provider-reported usage of every attempt that read one (`tests/reliability.py`). The long
version (every cell at 2,000 calls or more) is `bench/soak.py`.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from anytime_sim import SimConfig
from runner.cli import main
from tests.reliability import AIME, SimHost, check_fault_matrix, fault_cells, fault_manifest

PROBLEMS, SAMPLES = 14, 2  # x 8 lanes x 2 models = 448 jobs, about 2,100 calls
# what each injected fault shows in the ledger (a trickle shows nothing: it must not time out)
SEEN_AS = {"rate_limit_storm": "rate_limit", "trickle": None}


def test_every_fault_alone_and_mixed_at_run_scale(tmp_path: Path) -> None:
    cells = fault_cells()
    configs = [SimConfig(time_scale=0.0, chunk_tokens=16, faults=rates) for rates in cells.values()]
    with SimHost(configs, [("aime", AIME)]) as host:
        manifest = tmp_path / "matrix.toml"
        lanes = dict(zip(cells, host.urls, strict=True))
        manifest.write_text(fault_manifest("matrix", tmp_path / "ledgers", lanes, problems=PROBLEMS, samples=SAMPLES))
        assert main(["run", str(manifest), "--yes", "--plain", "--no-report"]) == 0
        jobs = len(cells) * 2 * PROBLEMS * SAMPLES
        figures = check_fault_matrix(tmp_path / "ledgers" / "matrix", host, list(cells), jobs)
    assert figures.attempts >= 2000 and figures.lost == figures.double == 0
    for lane in figures.lanes:
        rates = msgspec.structs.asdict(cells[lane.lane])
        for kind in lane.injected:
            assert kind in ("error_5xx", "reset", "drop", "malformed", "stall", "trickle", "rate_limit_storm")
        wanted = {_fault_of(name) for name, rate in rates.items() if rate and not name.endswith("_seconds")}
        assert wanted == set(lane.injected), f"{lane.lane}: injected {lane.injected}, rates {rates}"
        seen = {SEEN_AS.get(kind, kind) for kind in wanted} - {None}
        assert seen == set(lane.observed), f"{lane.lane}: the ledger shows {lane.observed}, injected {lane.injected}"


def _fault_of(rate_name: str) -> str:
    """The fault kind a `FaultRates` field injects."""
    return {"drop_mid_stream": "drop", "malformed_chunk": "malformed"}.get(rate_name, rate_name)
