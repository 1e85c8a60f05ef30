"""What the paper's AIME sweep costs under each answer schedule and in batch mode, on the simulator, side by side.

`manifests/paper-aime.toml` shrunk to the simulator: the same providers' protocols (xAI, OpenAI,
Together) pointed at ``sim://``, each model replaced by the simulated model named after it, the
same methods (Base, PDP, PDP(+)), pool, synthesis and budget grid (512 … 16384); fewer problems
and samples (``--problems``, ``--samples``) so that it runs in a minute or two. It is run twice
from scratch, with the same seed:

- **today**: ``run.answers = "after_trace"``: the forced answers after the trace, all at once, in
  the standalone prompt layout, nothing marked for a prompt cache (the schedule before #14);
- **cached**: ``run.answers = "at_cut"`` (the default): answers at cut time in budget order in
  the shared-prefix layout, a group's first trace warming its preface (docs/caching.md);
- **batch**: ``run.mode = "batch"``: the same calls through each provider's batch interface
  (OpenAI-style files + batches for xAI, OpenAI and Together), traces then answers, at batch prices
  (docs/batch.md).

The simulator caches prompts as each provider documents it and bills every run by the same
rules. Printed: Q(b) per budget for each (the simulator is deterministic, so it must be the same
answer by answer), dollars, cached input tokens and wall time of each; the last line
``cache_saving=<fraction of today's dollars saved> batch_saving=<fraction> same_quality=<1|0> …``.

    .venv/bin/python bench/cost.py [--problems 10] [--samples 3] [--time-scale 0.02]
    .venv/bin/python bench/cost.py --manifest demo      # or sim-paper: a manifest already on the simulator
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
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from runner.cli import main as cli  # noqa: E402
from runner.ledger.reader import iter_records  # noqa: E402
from runner.ledger.records import Attempt, JobDone, Snapshot  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# each paper model and the simulated model named after it
SIMULATED = {
    '"grok-3"': '"sim-grok-3"',
    '"grok-3-mini"': '"sim-grok-3-mini"',
    '"gpt-4.1"': '"sim-gpt-4.1"',
    '"gpt-4o"': '"sim-gpt-4o"',
    '"openai/gpt-oss-120b"': '"sim-gpt-oss-120b"',
    '"meta-llama/Llama-3.3-70B-Instruct-Turbo"': '"sim-llama-3.3-70b"',
}
Key = tuple[str, str, str, str, int, int | None]  # model, dataset, problem, method, sample, budget


def shrunk(folder: Path, schedule: str, problems: int, samples: int, time_scale: float) -> Path:
    """paper-aime.toml on the simulator, with the answer schedule ``schedule`` (``batch``: at cut
    time's layout, sent in batches)."""
    text = (REPO / "manifests" / "paper-aime.toml").read_text()
    text = re.sub(r"(\[providers\.\w+\]\n)", r'\1base_url = "sim://"\n', text)
    for real, simulated in SIMULATED.items():
        text = text.replace(f"model = {real}", f"model = {simulated}")
    text = re.sub(r"^limit = \d+", f"limit = {problems}", text, flags=re.M)
    text = re.sub(r"^samples = \d+", f"samples = {samples}", text, flags=re.M)
    text += f"\n[simulator]\ntime_scale = {time_scale}\nchunk_tokens = 16\n"
    return placed(text, folder, "paper-aime", schedule)


def as_is(name: str, folder: Path, schedule: str) -> Path:
    """A manifest already on the simulator (demo, sim-paper), with the answer schedule ``schedule``."""
    return placed((REPO / "manifests" / f"{name}.toml").read_text(), folder, name, schedule)


def placed(text: str, folder: Path, name: str, schedule: str) -> Path:
    """The manifest's text with absolute data paths, a private ledger folder and the schedule."""
    text = text.replace('"../data', f'"{REPO}/data')
    text = re.sub(r'ledger_dir = "[^"]*"', f'ledger_dir = "{folder}/ledgers"', text)
    setting = 'answers = "at_cut"\nmode = "batch"' if schedule == "batch" else f'answers = "{schedule}"'
    text = re.sub(r'^name = "[^"]*"', f'name = "{name}-{schedule}"\n{setting}', text, count=1, flags=re.M)
    path = folder / f"{name}-{schedule}.toml"
    path.write_text(text)
    return path


class Run:
    """One run's ledger, read: spend, cached tokens, and every graded snapshot."""

    def __init__(self, run_dir: Path, seconds: float) -> None:
        self.seconds = seconds
        self.usd = 0.0
        self.by_kind: dict[str, float] = defaultdict(float)
        self.cached = 0
        self.input = 0
        records = list(iter_records(run_dir))
        for rec in records:
            if isinstance(rec, Attempt):
                self.usd += rec.usd
                self.by_kind[rec.kind] += rec.usd
                self.input += rec.billed_input
                self.cached += rec.cached_input_tokens or 0
        done = {r.job_id: r.instance for r in records if isinstance(r, JobDone)}
        self.scores: dict[Key, float] = {
            (s.model, s.dataset, s.problem_id, s.method, s.sample, s.budget): s.score
            for s in records
            if isinstance(s, Snapshot) and done.get(s.job_id) == s.instance
        }

    def quality(self, budget: int | None) -> float:
        values = [v for k, v in self.scores.items() if k[5] == budget]
        return 100 * sum(values) / len(values) if values else float("nan")


def run(path: Path) -> Run:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli(["run", str(path), "--yes", "--plain", "--no-report"])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{path.name}: anytime run exited {code}")
    name = re.search(r'name = "([^"]+)"', path.read_text())
    assert name is not None
    return Run(path.parent / "ledgers" / name.group(1), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=10, help="AIME 2024 problems evaluated (paper: 30)")
    parser.add_argument("--samples", type=int, default=3, help="samples per problem (paper: 3)")
    parser.add_argument("--time-scale", type=float, default=0.02, help="simulator speed (1 = realistic)")
    parser.add_argument("--keep", type=Path, help="keep the manifests and ledgers in this folder")
    parser.add_argument(
        "--manifest",
        default="paper-aime",
        choices=("paper-aime", "demo", "sim-paper"),
        help="paper-aime shrunk to the simulator (default), or a manifest already on it, as it is",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        arms = []
        for schedule in ("after_trace", "at_cut", "batch"):
            if args.manifest == "paper-aime":
                path = shrunk(folder, schedule, args.problems, args.samples, args.time_scale)
            else:
                path = as_is(args.manifest, folder, schedule)
            arms.append(run(path))
        today, cached, batch = arms
    budgets = sorted({k[5] for k in today.scores if k[5] is not None})
    if args.manifest == "paper-aime":
        print(f"paper-aime on the simulator: {args.problems} problems x {args.samples} samples, 6 models x 3 methods")
    else:
        print(f"manifests/{args.manifest}.toml as it is")
    print(
        f"{'schedule':12}" + "".join(f"{b:>8}" for b in budgets) + f"{'full':>8}{'$':>10}{'cached in':>11}{'wall':>8}"
    )
    for label, r in (("today", today), ("cached", cached), ("batch", batch)):
        q = "".join(f"{r.quality(b):8.1f}" for b in [*budgets, None])
        share = r.cached / r.input if r.input else 0.0
        print(f"{label:12}{q}{r.usd:10.4f}{share:10.1%}{r.seconds:7.1f}s")
    for kind in ("trace", "answer", "synthesis"):
        print(
            f"  {kind:10} today ${today.by_kind[kind]:.4f}  cached ${cached.by_kind[kind]:.4f}"
            f"  batch ${batch.by_kind[kind]:.4f}"
        )
    same = int(today.scores == cached.scores == batch.scores and bool(today.scores))
    saving = 1 - cached.usd / today.usd
    batch_saving = 1 - batch.usd / today.usd
    print(
        f"cache_saving={saving:.3f} batch_saving={batch_saving:.3f} same_quality={same} today_usd={today.usd:.4f} "
        f"cached_usd={cached.usd:.4f} batch_usd={batch.usd:.4f} today_s={today.seconds:.1f} "
        f"cached_s={cached.seconds:.1f} batch_s={batch.seconds:.1f} snapshots={len(cached.scores)}"
    )


if __name__ == "__main__":
    main()
