"""Every lane busy: a sweep over two providers against each provider alone, and groups that share a lane.

Two runs of ``anytime run`` per scenario shape, on the built-in simulator at real speed
(``time_scale = 1``), each lane bound by its own limit (``max_concurrency``):

1. ``providers``: lane ``wide`` (6 calls at a time) and lane ``narrow`` (4 at a time), one model
   and 36 jobs each. Ours: both in one run. Baseline: each alone, one after the other (what
   a sweep that fed one provider at a time would take: the sum). Target: the run takes about as
   long as the slower lane alone (``wall_over_slower`` near 1), not the sum.
2. ``groups``: one lane (6 at a time), two models, 12 jobs each with PDP (a synthesis stage per
   group: 4 pool problems x 2 traces and their answers before the group's first job can start).
   Ours: both models in one run, their groups taking turns. Baseline: one model's run after the
   other's. The lane's limit binds either way, so the target is no loss (``groups_ratio`` near 1).

Wall time is the sweep's span in its own ledger (first attempt admitted to last attempt settled),
so the CLI's start-up, estimate and report stay out of it. Medians of ``--repeats``; each run
writes a fresh ledger in a temporary folder. About 2 minutes a round.

Usage: ``python bench/lanes.py [--repeats 3]``. The last line holds ``wall_over_slower=``,
``wall_over_sum=`` and ``groups_ratio=`` (together / one after the other) as ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runner.ledger.records import Attempt, decode_lines

REPO = Path(__file__).resolve().parent.parent
HEAD = """
[run]
name = "{name}"
seed = 1
ledger_dir = "{ledgers}"
confirm_above_usd = 100.0
{providers}
[datasets.aime]
kind = "aime"
path = "{data}/aime_2024_2025.jsonl"
limit = {limit}
pool = 4
{methods}
[sweep]
budgets = [256, 512]
samples = 1
models = [{models}]

[simulator]
time_scale = 1.0
chunk_tokens = 8
"""
PROVIDERS = """
[providers.wide]
kind = "sim"
max_concurrency = 6

[providers.narrow]
kind = "sim"
max_concurrency = 4

[models.w]
provider = "wide"
model = "sim-cot-small"

[models.n]
provider = "narrow"
model = "sim-cot-small"
"""
GROUPS = """
[providers.one]
kind = "sim"
max_concurrency = 6

[models.a]
provider = "one"
model = "sim-cot-small"

[models.b]
provider = "one"
model = "sim-gpt-4.1"
"""


def anytime() -> list[str]:
    exe = Path(sys.executable).with_name("anytime")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "runner.cli"]


def sweep_span_s(ledger: Path) -> float:
    """First attempt admitted to last attempt settled, from the run's own ledger."""
    attempts = [r for r in decode_lines(ledger.read_bytes()) if isinstance(r, Attempt)]
    start = min(a.started_at for a in attempts)
    return max(a.started_at + (a.latency_s or 0.0) for a in attempts) - start


def run(folder: Path, name: str, providers: str, models: list[str], limit: int, methods: str = "") -> float:
    manifest = folder / f"{name}.toml"
    manifest.write_text(
        HEAD.format(
            name=name,
            ledgers=folder / "ledgers",
            providers=providers,
            data=REPO / "data",
            limit=limit,
            methods=methods,
            models=", ".join(f'"{m}"' for m in models),
        )
    )
    out = subprocess.run([*anytime(), "run", str(manifest), "--yes", "--plain"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"anytime run {name} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return sweep_span_s(folder / "ledgers" / name / "ledger.jsonl")


def providers_round(folder: Path, i: int) -> tuple[float, float, float]:
    """(both together, wide alone, narrow alone) seconds; each lane has 36 jobs."""
    cot = '\n[methods.cot]\nkind = "cot"\n'
    both = run(folder, f"both{i}", PROVIDERS, ["w", "n"], 36, cot)
    wide = run(folder, f"wide{i}", PROVIDERS, ["w"], 36, cot)
    narrow = run(folder, f"narrow{i}", PROVIDERS, ["n"], 36, cot)
    return both, wide, narrow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# time scale 1, {args.repeats} rounds, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows: dict[str, list[float]] = {k: [] for k in ("both", "wide", "narrow", "groups", "a", "b")}
    pdp = '\n[methods.pdp]\nkind = "pdp"\nk = 2\n'
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.repeats):
            both, wide, narrow = providers_round(folder, i)
            groups = run(folder, f"groups{i}", GROUPS, ["a", "b"], 12, pdp)
            a = run(folder, f"a{i}", GROUPS, ["a"], 12, pdp)
            b = run(folder, f"b{i}", GROUPS, ["b"], 12, pdp)
            for key, value in zip(rows, (both, wide, narrow, groups, a, b), strict=True):
                rows[key].append(value)
            print(
                f"round {i + 1}: providers together {both:.2f} s, wide alone {wide:.2f} s, "
                f"narrow alone {narrow:.2f} s; groups together {groups:.2f} s, a alone {a:.2f} s, "
                f"b alone {b:.2f} s  (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in rows.items()}
    slower = max(med["wide"], med["narrow"])
    total = med["wide"] + med["narrow"]
    sequential = med["a"] + med["b"]
    fields = {
        "lanes_wall_s": round(med["both"], 2),
        "slower_alone_s": round(slower, 2),
        "sum_alone_s": round(total, 2),
        "wall_over_slower": round(med["both"] / slower, 3),
        "wall_over_sum": round(med["both"] / total, 3),
        "groups_wall_s": round(med["groups"], 2),
        "groups_sequential_s": round(sequential, 2),
        "groups_ratio": round(med["groups"] / sequential, 3),
        "load": round(os.getloadavg()[0], 1),
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
