"""The reliability suite's long version (issue 12): the fault matrix with every cell at run
scale, the crash matrix with many more kills, and the fuzz tests at 10,000 examples.

1. Fault matrix: one `anytime run` with a lane per cell (5xx, 429 storms, drops mid-stream,
   malformed SSE, stalls, slow trickles, connection resets, and all of them mixed), each lane on
   a simulator of its own and each at ``--cell-calls`` calls or more. Every job completes once,
   and every lane's ledger equals its simulator's counts for its key (`tests/reliability/faults.py`).
2. Crash matrix: `kill -9` of a real `anytime run` at ``--kills`` moments drawn from ``--seed``
   (printed), resuming each time, against an uninterrupted run of the same manifest: no attempt
   lost, quality identical, spend = uninterrupted + interrupted, printed = report = verify.
3. Fuzz: every ``tests/test_*fuzz*.py`` with ``ANYTIME_FUZZ_EXAMPLES`` set (the cases over every
   fuzz property); the cases are read from the ``fuzz: cases=N`` line the fuzz tests print (else
   summed from Hypothesis's statistics). Said plainly when there are none.

The uninterrupted run is the crash matrix's baseline, run side by side in the same soak. The last
line holds ``name=value`` pairs: jobs, calls, faults injected per kind, kills, fuzz cases, records
lost, the largest $ difference, and the wall time.

Usage: ``python bench/soak.py [--cell-calls 2000] [--kills 60] [--fuzz-examples 10000] [--seed N]
[--only fault,crash,fuzz] [--keep DIR]`` (about 11 minutes on 2 cores with the defaults).
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end; the repository root goes in
# front, for the suite's machinery in tests/reliability/
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path[:] = [_ROOT] + [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import anyio  # noqa: E402

from tests.reliability import MODELS  # noqa: E402
from tests.reliability.crashes import CrashFigures, CrashPlan, run_crash_matrix  # noqa: E402
from tests.reliability.faults import MatrixFigures, fault_cells, run_fault_matrix  # noqa: E402

CALLS_PER_JOB = 4  # a trace and one answer per budget (3): the fault manifests' shape
CRASH_CALLS_PER_JOB = 4


def soak_faults(folder: Path, cell_calls: int, storm_s: float) -> MatrixFigures:
    cells = fault_cells(storm_s=storm_s)
    problems = 30
    samples = math.ceil(cell_calls / (len(MODELS) * problems * CALLS_PER_JOB))
    print(f"# fault matrix: {len(cells)} cells x {len(MODELS) * problems * samples} jobs", flush=True)
    t0 = time.monotonic()
    figures = run_fault_matrix(folder, cells, problems=problems, samples=samples)
    for lane in figures.lanes:
        print(
            f"{lane.lane:10s} calls {lane.calls:6,d}  attempts {lane.attempts:6,d}  requests {lane.requests:6,d}  "
            f"injected {lane.injected}  seen {lane.observed}  usage matched {lane.usage_matched:,d} "
            f"(+{lane.usage_cut:,d} cut)  lost {lane.lost}  double {lane.double}",
            flush=True,
        )
    short = [lane.lane for lane in figures.lanes if lane.calls < cell_calls]
    assert not short, f"cells under {cell_calls} calls: {short}"
    print(f"fault matrix: {figures.jobs:,d} jobs, {figures.attempts:,d} attempts in {time.monotonic() - t0:.1f} s")
    return figures


def soak_crashes(folder: Path, seed: int, kills: int, calls: int) -> CrashFigures:
    problems = 26  # of the file's 30: the rest is PDP's held-out pool
    samples = math.ceil(calls / (4 * problems * CRASH_CALLS_PER_JOB))  # 2 models x 2 methods
    plan = CrashPlan(seed=seed, kills=kills, stops=kills // 5, problems=problems, samples=samples)
    print(f"# crash matrix: seed {seed}, {plan.kills} kills, {plan.stops} stops, {4 * problems * samples} jobs")
    t0 = time.monotonic()
    figures = anyio.run(run_crash_matrix, folder, plan)
    print(
        f"crash matrix: {figures.kills} kills, {figures.stops} stops, {figures.jobs:,d} jobs, "
        f"{figures.attempts:,d} attempts, "
        f"{figures.requests:,d} requests ({figures.recovered} recovered from crashes, {figures.unsent} on "
        f"record but never sent, {figures.lost} lost); spend ${figures.usd_total:.6f} + reused "
        f"${figures.usd_reused:.6f} = uninterrupted ${figures.usd_reference:.6f} + paid by executions cut "
        f"short ${figures.usd_superseded:.6f}, of which lost ${figures.usd_interrupted:.6f} (difference "
        f"${figures.usd_difference:.2e}); printed = report = verify within ${figures.usd_totals_gap:.2e}; "
        f"{time.monotonic() - t0:.1f} s",
        flush=True,
    )
    made = (figures.kills, figures.stops)
    assert made == (plan.kills, plan.stops), f"the run finished after {made} of {plan.kills} kills, {plan.stops} stops"
    return figures


def soak_fuzz(examples: int) -> tuple[int, str]:
    """Run every tests/test_*fuzz*.py with ANYTIME_FUZZ_EXAMPLES set; (cases, status)."""
    files = sorted(str(p) for p in (Path(_ROOT) / "tests").glob("test_*fuzz*.py"))
    if not files:
        print("fuzz: no tests/test_*fuzz*.py on this branch: nothing to run", flush=True)
        return 0, "absent"
    env = {**os.environ, "ANYTIME_FUZZ_EXAMPLES": str(examples)}
    # one process (-n 0): pytest-xdist's workers keep the statistics the cases are counted from
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider"]
    command += ["--hypothesis-show-statistics", *files]
    t0 = time.monotonic()
    done = subprocess.run(command, cwd=_ROOT, env=env, capture_output=True, text=True, check=False)
    cases = fuzz_cases(done.stdout)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    print(
        f"fuzz: {len(files)} files, {cases:,d} cases, pytest exit {done.returncode}: {tail} "
        f"({time.monotonic() - t0:.1f} s)",
        flush=True,
    )
    return cases, "ok" if done.returncode == 0 else "failed"


def fuzz_cases(output: str) -> int:
    """The cases the fuzz tests ran: the ``fuzz: cases=N`` line their support prints, else the
    sum of Hypothesis's statistics (passing and failing examples of every property)."""
    told = re.findall(r"fuzz: cases=(\d+)", output)
    if told:
        return int(told[-1])
    counts = re.findall(r"(\d+) passing examples?, (\d+) failing examples?", output)
    return sum(int(passing) + int(failing) for passing, failing in counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell-calls", type=int, default=2000, help="calls per fault cell (default 2000)")
    parser.add_argument("--storm-seconds", type=float, default=0.25, help="length of a 429 storm (default 0.25)")
    parser.add_argument("--kills", type=int, default=60, help="kill -9 moments in the crash matrix (default 60)")
    parser.add_argument("--crash-calls", type=int, default=4000, help="calls of the crashed run (default 4000)")
    parser.add_argument("--fuzz-examples", type=int, default=10_000, help="Hypothesis examples per fuzz test")
    parser.add_argument("--seed", type=int, default=None, help="the kill moments' seed (default: drawn, printed)")
    parser.add_argument("--only", default="fault,crash,fuzz", help="parts to run (default fault,crash,fuzz)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the ledgers in this folder")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    t0 = time.monotonic()
    fields: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        folder = args.keep or Path(scratch)
        if "fault" in parts:
            fields |= _fault_fields(soak_faults(folder / "faults", args.cell_calls, args.storm_seconds))
        if "crash" in parts:
            fields |= _crash_fields(soak_crashes(folder / "crashes", seed, args.kills, args.crash_calls), seed)
        if "fuzz" in parts:
            cases, status = soak_fuzz(args.fuzz_examples)
            fields |= {"fuzz_cases": cases, "fuzz": status}
    fields["records_lost"] = int(fields.pop("lost_fault", 0)) + int(fields.pop("lost_crash", 0))  # type: ignore[call-overload]
    fields["wall_s"] = round(time.monotonic() - t0, 1)
    print(" ".join(f"{name}={value}" for name, value in fields.items()))
    return 0 if fields.get("fuzz", "ok") != "failed" else 1


def _fault_fields(figures: MatrixFigures) -> dict[str, object]:
    return {
        "fault_jobs": figures.jobs,
        "fault_calls": sum(lane.calls for lane in figures.lanes),
        "fault_attempts": figures.attempts,
        "min_cell_calls": min(lane.calls for lane in figures.lanes),
        **{f"faults_{kind}": n for kind, n in figures.injected().items()},
        "rate_limited": sum(lane.observed.get("rate_limit", 0) for lane in figures.lanes),
        "double_counted": figures.double,
        "lost_fault": figures.lost,
    }


def _crash_fields(figures: CrashFigures, seed: int) -> dict[str, object]:
    return {
        "crash_jobs": figures.jobs,
        "crash_attempts": figures.attempts,
        "kills": figures.kills,
        "stops": figures.stops,
        "seed": seed,
        "recovered": figures.recovered,
        "unsent_on_record": figures.unsent,
        "lost_crash": figures.lost,
        "usd_difference": f"{max(figures.usd_difference, figures.usd_totals_gap):.1e}",
        "usd_interrupted": round(figures.usd_interrupted, 6),
    }


if __name__ == "__main__":
    sys.exit(main())
