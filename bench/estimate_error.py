"""How close `anytime estimate` comes to what a run spends, on every simulator manifest.

For each of `manifests/demo.toml`, `sim-paper.toml` and `sim-mixed.toml` (run offline on the
built-in simulator, in a temporary folder), three estimates are compared with the spend the
ledger records:

- **cold**: the stated prior only (no ledger of these models anywhere), against the whole run;
- **prior**: an earlier run of the same manifest with another seed in the ledger folder, against
  the whole run;
- **pilot**: `anytime estimate --pilot N` (N problems per cell run first, in the run's own
  folder), against what the rest of the run then spends; with its 90% interval.

It also checks that no run spends more than the estimate's high bound and that no run is faster
than its least wall time. Prints one row per manifest, then the last line as name=value pairs
(errors as signed fractions of the actual spend).

    .venv/bin/python bench/estimate_error.py [--pilot N] [--only demo]
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's tokenize: this folder goes last on the path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from runner.cli import main as cli  # noqa: E402
from runner.config.manifest import load_manifest  # noqa: E402
from runner.ledger.estimate import Estimate, estimate_manifest  # noqa: E402
from runner.ledger.reader import load_state  # noqa: E402

MANIFESTS = ("demo", "sim-paper", "sim-mixed")


def copy_manifest(name: str, folder: Path, run_name: str, seed_shift: int = 0) -> Path:
    """The repository's manifest with absolute data paths, a private ledger folder and a new run name."""
    text = (REPO / "manifests" / f"{name}.toml").read_text()
    text = text.replace('"../data', f'"{REPO}/data')
    text = re.sub(r'ledger_dir = "[^"]*"', f'ledger_dir = "{folder}/ledgers"', text)
    text = re.sub(r'name = "[^"]*"', f'name = "{run_name}"', text, count=1)
    text = re.sub(r"^seed = (\d+)", lambda m: f"seed = {int(m.group(1)) + seed_shift}", text, count=1, flags=re.M)
    path = folder / f"{run_name}.toml"
    path.write_text(text)
    return path


def quiet(argv: list[str]) -> tuple[int, float]:
    """Run the CLI with its output swallowed; (exit code, seconds)."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli(argv)
    return code, time.perf_counter() - start


def spent(path: Path) -> float:
    loaded = load_manifest(path)
    return load_state(loaded.run_dir()).total_usd


def error(estimate: float, actual: float) -> float:
    return estimate / actual - 1.0


def one(name: str, folder: Path, pilot: int) -> dict[str, float]:
    main = copy_manifest(name, folder, f"{name}-main")
    cold: Estimate = estimate_manifest(load_manifest(main), previous=[])
    code, seconds = quiet(["run", str(main), "--yes", "--plain", "--no-report"])
    assert code == 0, f"{name}: run exited {code}"
    actual = spent(main)
    prior_path = copy_manifest(name, folder, f"{name}-earlier", seed_shift=1)
    assert quiet(["run", str(prior_path), "--yes", "--plain", "--no-report"])[0] == 0
    fresh = copy_manifest(name, folder, f"{name}-again")  # the same run, not yet made
    prior = estimate_manifest(load_manifest(fresh), previous=[load_manifest(prior_path).run_dir()])
    assert quiet(["run", str(fresh), "--yes", "--plain", "--no-report"])[0] == 0
    prior_actual = spent(fresh)
    piloted = copy_manifest(name, folder, f"{name}-pilot")
    assert quiet(["estimate", str(piloted), "--pilot", str(pilot), "--yes", "--plain", "--no-history"])[0] == 0
    before = spent(piloted)
    rest = estimate_manifest(load_manifest(piloted), previous=[])
    assert quiet(["run", str(piloted), "--yes", "--plain", "--no-report"])[0] == 0
    rest_actual = spent(piloted) - before
    low, high = rest.usd_interval or (0.0, 0.0)
    row = {
        "actual": actual,
        "cold": error(cold.usd_expected, actual),
        "prior": error(prior.usd_expected, prior_actual),
        "pilot": error(rest.usd_expected, rest_actual),
        "pilot_in_interval": float(low <= rest_actual <= high),
        "high_holds": float(cold.usd_high >= actual),
        "wall_holds": float((cold.min_wall_s or 0.0) <= seconds),
        "seconds": seconds,
        "least_s": cold.min_wall_s or 0.0,
    }
    print(
        f"{name:10} actual ${actual:.4f}  cold {row['cold']:+.1%} (${cold.usd_expected:.4f}, high ${cold.usd_high:.4f})"
        f"  prior {row['prior']:+.1%} (${prior.usd_expected:.4f} vs ${prior_actual:.4f})"
        f"  pilot {row['pilot']:+.1%} (${rest.usd_expected:.4f} [{low:.4f}, {high:.4f}] vs ${rest_actual:.4f})"
        f"  run {seconds:.1f}s >= least {row['least_s']:.1f}s",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilot", type=int, default=5, help="problems per cell in the pilot (default 5)")
    parser.add_argument("--only", action="append", choices=MANIFESTS, help="only this manifest (repeatable)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="estimate-error-") as tmp:
        for name in args.only or MANIFESTS:
            row = one(name, Path(tmp), args.pilot)
            key = name.replace("-", "_")
            for part in ("cold", "prior", "pilot"):
                figures[f"{key}_{part}"] = row[part]
            figures[f"{key}_pilot_in_interval"] = row["pilot_in_interval"]
            figures[f"{key}_high_holds"] = row["high_holds"]
            figures[f"{key}_wall_holds"] = row["wall_holds"]
    errors = ("cold", "prior", "pilot")
    print(" ".join(f"{k}={v:+.3f}" if k.endswith(errors) else f"{k}={v:.0f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
