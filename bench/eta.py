"""How close the run's ETA comes to the time that was really left, on simulator sweeps.

Each case runs ``anytime run MANIFEST --yes --json-progress --progress-every 0.1`` as a real
subprocess (the manifest copied into a temporary folder, so every run is fresh) and reads its
progress lines. At each line the time really left is known afterwards: the moment the last job
finished minus the line's time. Side by side, two estimates of it:

- ``ours``: the dashboard's ETA (`runner.engine.eta`: the estimate's planned work, moved toward
  what finished jobs used, over the pace observed, bounded by the rate limits);
- ``naive``: elapsed / jobs done here x jobs left (what the dashboard showed before).

Figures per case: the relative error |estimate - real| / real at the first line past 10 %, 25 %,
50 % and 75 % of the jobs, the median and the worst over every line from 10 % to 90 % of the
jobs, and the first ETA shown (when, and its error). Errors are medians over ``--repeat`` runs.

Cases: ``demo`` (manifests/demo.toml as shipped), ``sim-mixed`` (manifests/sim-mixed.toml as
shipped: five protocols, 36 jobs, ~3 s) and ``sim-mixed-long`` (the same at ``time_scale = 0.3``
over all 30 problems with 8 workers a lane: 180 jobs, 24 to 60 a lane); ``-history`` runs the case once first in
the same ledger folder, so the estimate's "expected" is calibrated on it (as on a second run).

Usage: ``python bench/eta.py [--repeat 3] [--cases demo,demo-history,...]``. The last line
holds ``name=value`` pairs: ``<case>_ours_p10`` (error at 10 % of the jobs), ``<case>_ours_median``,
``<case>_ours_worst`` and the same for ``naive``.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = (0.10, 0.25, 0.50, 0.75)
ANYTIME = (sys.executable, "-m", "runner.cli")


@dataclass
class Case:
    manifest: str
    replace: dict[str, str]  # text of the manifest -> what it becomes
    flags: tuple[str, ...] = ()
    history: bool = False  # run it once first, so the estimate is calibrated on that run's ledger


# long enough for the ETA to matter, with more jobs than a lane runs at once (8 workers a lane), and
# few streams at once, so the simulator (in the run's own process) does not starve it of CPU
LONG = {"time_scale = 0.1": "time_scale = 0.3", '\nbase_url = "sim://"': '\nbase_url = "sim://"\nmax_concurrency = 8'}
LONG_FLAGS = ("--limit", "30", "--max-usd", "20")
CASES = {
    "demo": Case("manifests/demo.toml", {}),
    "demo-history": Case("manifests/demo.toml", {}, history=True),
    "sim-mixed": Case("manifests/sim-mixed.toml", {}),
    "sim-mixed-long": Case("manifests/sim-mixed.toml", LONG, LONG_FLAGS),
    "sim-mixed-long-history": Case("manifests/sim-mixed.toml", LONG, LONG_FLAGS, history=True),
}


def write_manifest(case: Case, folder: Path) -> Path:
    """The case's manifest in ``folder``: its ledgers there, data paths absolute, its changes applied."""
    text = (REPO / case.manifest).read_text()
    text = text.replace('"../ledgers"', json.dumps(str(folder / "ledgers")))
    text = text.replace('"../data/', json.dumps(str(REPO / "data") + "/")[:-1])
    for old, new in case.replace.items():
        assert old in text, f"{case.manifest}: no {old!r} to change"
        text = text.replace(old, new)
    path = folder / "m.toml"
    path.write_text(text)
    return path


def run_once(case: Case) -> list[dict[str, object]]:
    """One fresh run of the case (after an unmeasured one, for ``history``); its progress lines."""
    with tempfile.TemporaryDirectory(prefix="anytime-eta-") as tmp:
        manifest = write_manifest(case, Path(tmp))
        if case.history:
            _run(case, manifest)
        return _run(case, manifest)


def _run(case: Case, manifest: Path) -> list[dict[str, object]]:
    argv = [*ANYTIME, "run", str(manifest), "--yes", "--json-progress", "--progress-every", "0.1"]
    argv += ["--no-report", "--new-run", *case.flags]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{case.manifest}: exit {out.returncode}\n{out.stderr[-2000:]}")
    events = [json.loads(line) for line in out.stdout.splitlines()]
    return [e for e in events if e["event"] == "progress"]


def errors(progress: list[dict[str, object]]) -> dict[str, float]:
    """The relative errors of ours and the naive estimate against the time really left."""
    finished = next(float(p["now"]) for p in progress if p["jobs_done"] >= p["jobs_total"])  # type: ignore[operator,arg-type]
    rows = []
    for p in progress:
        total, done, skipped = int(p["jobs_total"]), int(p["jobs_done"]), int(p["jobs_skipped"])  # type: ignore[call-overload]
        now, started = float(p["now"]), float(p["started_at"])  # type: ignore[arg-type]
        left = finished - now
        if left <= 0.05 or total == 0:
            continue
        ran = done - skipped
        naive = (now - started) / ran * (total - done) if ran > 0 else None
        ours = p["eta_s"] if p["eta_complete"] else None  # a lower bound is not a forecast
        rows.append((done / total, left, ours, naive, now - started))
    out: dict[str, float] = {}
    for name, index in (("ours", 2), ("naive", 3)):
        for mark in CHECKPOINTS:
            row = next((r for r in rows if r[0] >= mark and r[index] is not None), None)
            if row is not None:
                out[f"{name}_p{round(mark * 100)}"] = abs(row[index] - row[1]) / row[1]
        window = [abs(r[index] - r[1]) / r[1] for r in rows if 0.10 <= r[0] <= 0.90 and r[index] is not None]
        if window:
            out[f"{name}_median"] = statistics.median(window)
            out[f"{name}_worst"] = max(window)
        first = next((r for r in rows if r[index] is not None), None)
        if first is not None:
            out[f"{name}_first_at_s"] = first[4]
            out[f"{name}_first"] = abs(first[index] - first[1]) / first[1]
    out["run_s"] = finished - float(progress[0]["started_at"])  # type: ignore[arg-type]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    fields: dict[str, object] = {}
    for name in args.cases.split(","):
        runs = [errors(run_once(CASES[name])) for _ in range(args.repeat)]
        keys = sorted({k for r in runs for k in r})
        medians = {k: statistics.median(r[k] for r in runs if k in r) for k in keys}
        print(f"# {name}: {args.repeat} runs, median run {medians['run_s']:.1f} s")
        for who in ("ours", "naive"):
            marks = "  ".join(
                f"{round(m * 100)}%: {medians[f'{who}_p{round(m * 100)}']:.0%}"
                for m in CHECKPOINTS
                if f"{who}_p{round(m * 100)}" in medians
            )
            print(
                f"  {who:5s} |error| at {marks}  median 10-90%: {medians.get(f'{who}_median', float('nan')):.0%}"
                f"  worst: {medians.get(f'{who}_worst', float('nan')):.0%}"
                f"  first shown at {medians.get(f'{who}_first_at_s', float('nan')):.1f} s"
                f" ({medians.get(f'{who}_first', float('nan')):.0%} off)",
                flush=True,
            )
        short = name.replace("-", "_")
        for who in ("ours", "naive"):
            for key in ("p10", "median", "worst"):
                if f"{who}_{key}" in medians:
                    fields[f"{short}_{who}_{key}"] = round(medians[f"{who}_{key}"], 3)
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
