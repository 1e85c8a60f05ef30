"""What trace reuse saves on a realistic rerun: a manifest run, then run again with one more budget.

A simulator manifest (`manifests/demo.toml` by default, or ``--manifest sim-paper``) is run once
(**first**). Then the same manifest with one more budget in every grid is run twice, side by side
in this process: from scratch (**fresh**, the baseline: what a rerun cost before reuse) and with
``run.reuse`` naming the first run (**reused**: docs/reuse.md). The simulator is deterministic, so
the two must grade every (model, problem, method, sample, budget) alike; reuse must only change
what is paid.

Printed: per arm the dollars, what `anytime estimate` expected (and its high bound) before it ran,
trace / answer / synthesis calls made and the wall time; the reused arm's reuse records (traces
served, continued, requested again; answers served; dollars not spent); the last line
``reuse_saving=<fraction of fresh dollars saved> same_quality=<1|0> reused_estimate_error=… …``.

    .venv/bin/python bench/reuse.py                       # demo, one more budget: 768 (between 512 and 1024)
    .venv/bin/python bench/reuse.py --manifest sim-paper --add-budget 8192   # past every grid's end
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's tokenize: this folder goes last on the path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

from cost import REPO, Run, placed, run  # noqa: E402

from runner.config.manifest import load_manifest  # noqa: E402
from runner.ledger.estimate import Estimate, estimate_manifest  # noqa: E402
from runner.ledger.reader import iter_records  # noqa: E402
from runner.ledger.records import Attempt, Reuse  # noqa: E402


def with_budget(text: str, budget: int) -> str:
    """Every budget grid of the manifest with ``budget`` added (kept sorted, once)."""

    def widen(match: re.Match[str]) -> str:
        grid = sorted({int(b) for b in match.group(2).split(",")} | {budget})
        return f"{match.group(1)}[{', '.join(map(str, grid))}]"

    return re.sub(r"^(budgets = )\[([0-9, ]+)\]", widen, text, flags=re.M)


class Arm(NamedTuple):
    run: Run
    calls: Counter[str]  # calls made, per kind (distinct call ids)
    reused: list[Reuse]
    estimate: Estimate  # `anytime estimate` of the arm before it ran


def arm(folder: Path, text: str, name: str, reuse: str | None = None) -> Arm:
    """Estimate and run one arm (with ``run.reuse`` naming ``reuse``, if given)."""
    if reuse is not None:
        text = re.sub(r"^(\[run\]\n)", rf'\1reuse = ["{reuse}"]\n', text, count=1, flags=re.M)
    path = placed(text, folder, name, "at_cut")
    estimate = estimate_manifest(load_manifest(path))
    result = run(path)
    records = list(iter_records(folder / "ledgers" / f"{name}-at_cut"))
    calls = Counter(kind for kind, _ in {(r.kind, r.call_id) for r in records if isinstance(r, Attempt)})
    return Arm(result, calls, [r for r in records if isinstance(r, Reuse)], estimate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="demo", choices=("demo", "sim-paper"), help="a simulator manifest")
    parser.add_argument("--add-budget", type=int, default=768, help="the budget the rerun adds to every grid")
    parser.add_argument("--keep", type=Path, help="keep the manifests and ledgers in this folder")
    args = parser.parse_args()
    text = (REPO / "manifests" / f"{args.manifest}.toml").read_text()
    wider = with_budget(text, args.add_budget)
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        first = arm(folder, text, f"{args.manifest}-first")
        fresh = arm(folder, wider, f"{args.manifest}-fresh")
        reused = arm(folder, wider, f"{args.manifest}-reused", f"{args.manifest}-first-at_cut")
    print(f"manifests/{args.manifest}.toml, rerun with budget {args.add_budget} added to every grid")
    print(f"{'arm':8}{'$':>10}{'estimate $ (high)':>20}{'traces':>8}{'answers':>9}{'synthesis':>11}{'wall':>8}")
    for label, a in (("first", first), ("fresh", fresh), ("reused", reused)):
        counts = "".join(f"{a.calls[k]:>{w}}" for k, w in (("trace", 8), ("answer", 9), ("synthesis", 11)))
        priced = f"{a.estimate.usd_expected:.4f} ({a.estimate.usd_high:.4f})"
        print(f"{label:8}{a.run.usd:10.4f}{priced:>20}{counts}{a.run.seconds:7.1f}s")
    modes = Counter((r.kind if r.key.startswith("c") else "trace", r.mode) for r in reused.reused)
    print("  reuse records: " + ", ".join(f"{kind} {mode}: {n}" for (kind, mode), n in sorted(modes.items())))
    not_spent = sum(r.usd for r in reused.reused)
    same = int(fresh.run.scores == reused.run.scores and bool(fresh.run.scores))
    saving = 1 - reused.run.usd / fresh.run.usd
    error = reused.estimate.usd_expected / reused.run.usd - 1
    print(
        f"reuse_saving={saving:.3f} same_quality={same} fresh_usd={fresh.run.usd:.4f} "
        f"reused_usd={reused.run.usd:.4f} not_spent_usd={not_spent:.4f} reused_estimate_error={error:+.3f} "
        f"reused_high_holds={int(reused.estimate.usd_high >= reused.run.usd)} fresh_traces={fresh.calls['trace']} "
        f"reused_traces={reused.calls['trace']} fresh_s={fresh.run.seconds:.1f} reused_s={reused.run.seconds:.1f} "
        f"snapshots={len(reused.run.scores)}"
    )


if __name__ == "__main__":
    main()
