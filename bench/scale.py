"""Thousands of realistic streams in one process: client CPU per chunk, memory per stream, throughput.

The load is what real reasoning models send: 1 token per SSE chunk at ~120 tokens/s per stream
(``anytime sim --chunk-tokens 1 --time-scale 5``: `sim-reasoner-large` streams 600 tokens/s at
time scale 1), 512 reasoning tokens per stream, every stream started at once. The simulator runs in
its own process and its CPU is reported apart (read from ``/proc/<pid>/stat`` around the client's
run); the client runs in a process of its own too, so its CPU time and peak RSS are its own.

The client is `bench/streams.py`'s ``lane`` client: the scheduler's `runner.engine.lane.Lane`
(spend guard, `LaneLimiter`, `OpenAIChatAdapter` on aiohttp, the watchdog, an `Attempt` record per
call into a no-op sink), the reasoning fed to a `TraceConsumer` a socket read at a time (exact cuts
at 64/128/256/512 tokens), under the collector setting `anytime run` streams with; a stream counts
as done only when all four cuts are final and it counted exactly 512 tokens (our chunks are those
tokens / ``--chunk-tokens``). The baseline is the same file's ``openai`` client (the official SDK,
no tokenizing, counting its chunks), run at one stream count (``--sdk-streams``; it needs ~36x our
CPU, minutes at 1,000 streams).

The machine's speed drifts (a shared host): compare figures of one run, or each against the
simulator's own CPU per chunk in the same run.

Figures per stream count: client CPU (user + system) per streamed text chunk; peak RSS above the
client's RSS before the phase, per stream at peak concurrency; throughput (chunks per wall
second); wall time against the time the streams would take on an idle machine (``ideal_s``: the
first token's delay and 512 tokens at 120/s); 429s the simulator counted; the simulator's CPU per
chunk. Medians of ``--repeats`` runs, each on a fresh simulator.

Workers (``--worker-jobs``, 0: none): the whole product, ``anytime run --workers 1`` and then
``--workers 2`` on one manifest of that many jobs (`sim-reasoner-large`, one cut at 512 tokens, every
job at once: ``max_concurrency`` = the jobs) against the same kind of simulator, in its own process.
Throughput is the chunks the run needed (each trace up to its last cut, and the answers: output
tokens, one a chunk) over the span from the first attempt's start to the last one's end, read from
the run's ledger, so start-up is left out; client CPU is the run's own and its workers' (from
``/proc``, sampled every 0.1 s; start-up included), per chunk; 429s are the ledger's. ``worker_ratio``
is the 2-worker throughput over the 1-worker one (medians of ``--repeats``, the two taking turns).

Usage: ``python bench/scale.py [--streams 1000,3000 --repeats 3 --sdk-streams 1000 --worker-jobs
1000]``. The last line is ``cpu_us_per_chunk=… kb_per_stream=… worker_ratio=… n429=…`` at the
largest stream count (n429 over every run, the workers' included), then the other figures
(targets: <= 3 µs, <= 100 KB, >= 1.6, 0).
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402
import anyio  # noqa: E402
from streams import run_client  # noqa: E402
from throughput import SimProcess, sim_stats  # noqa: E402

MODEL_TPS = 600.0  # sim-reasoner-large's tokens/s at time scale 1
MODEL_TTFT_S = 0.2


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


def one_run(which: str, streams: int, args: argparse.Namespace) -> dict[str, object]:
    """One client against a fresh simulator; the client's figures plus the simulator's."""
    sim_args = ("--chunk-tokens", str(args.chunk_tokens), "--time-scale", str(args.time_scale))
    with SimProcess(*sim_args) as sim:
        sim_cpu0 = process_cpu_s(sim.pid)
        load0 = load_average()
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                which,
                "--base-url",
                sim.base_url,
                "--streams",
                str(streams),
                "--tokens",
                str(args.tokens),
                "--loop",
                args.loop,
                "--chunk-tokens",
                str(args.chunk_tokens),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        sim_cpu = process_cpu_s(sim.pid) - sim_cpu0
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        stats = anyio.run(_stats_of, sim.base_url)
    chunks = max(1, int(str(result["chunks"])))
    result["sim_cpu_s"] = round(sim_cpu, 3)
    result["sim_cpu_us_per_chunk"] = round(sim_cpu / chunks * 1e6, 2)
    models = stats.get("models")
    result["n429"] = sum(int(m["rate_limited"]) for m in models.values()) if isinstance(models, dict) else 0
    result["sim_peak_in_flight"] = stats.get("peak_in_flight")
    result["chunks_per_s"] = round(chunks / float(str(result["wall_s"])), 0)
    result["load"] = round((load0 + load_average()) / 2, 1)
    return result


async def _stats_of(base_url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session:
        return await sim_stats(session, base_url)


WORKERS_MANIFEST = """
[run]
name = "scale"
seed = 1
ledger_dir = "{ledgers}"
confirm_above_usd = 1000000.0
transcripts = false

[providers.sim]
kind = "sim"
base_url = "{url}/v1"
max_concurrency = {jobs}

[models.r]
provider = "sim"
model = "sim-reasoner-large"

[datasets.aime]
kind = "aime"
path = "{data}/aime_2024.jsonl"

[methods.cot]
kind = "cot"

[sweep]
budgets = [{tokens}]
samples = {samples}
"""


def workers_run(workers: int, args: argparse.Namespace) -> dict[str, float]:
    """`anytime run --workers N` of ``--worker-jobs`` jobs; throughput, CPU and 429s from its ledger."""
    from runner.ledger.reader import iter_records
    from runner.ledger.records import Attempt, JobDone

    sim_args = ("--chunk-tokens", str(args.chunk_tokens), "--time-scale", str(args.time_scale))
    data = Path(_HERE).parent / "data"
    with SimProcess(*sim_args) as sim, tempfile.TemporaryDirectory() as folder:
        samples = -(-args.worker_jobs // 30)  # the dataset's 30 problems, as many samples as it takes
        manifest = Path(folder) / "scale.toml"
        manifest.write_text(
            WORKERS_MANIFEST.format(
                ledgers=folder, url=sim.base_url, jobs=30 * samples, data=data, tokens=args.tokens, samples=samples
            )
        )
        load0 = load_average()
        command = [sys.executable, "-m", "runner.cli", "run", str(manifest), "--yes", "-q", "--no-report"]
        started = time.perf_counter()
        run = subprocess.Popen([*command, "--workers", str(workers)])
        cpu = tree_cpu_s(run)
        wall = time.perf_counter() - started
        if run.returncode != 0:
            raise RuntimeError(f"anytime run --workers {workers} exited {run.returncode}")
        kept = list(iter_records(Path(folder) / "scale"))
    attempts = [r for r in kept if isinstance(r, Attempt)]
    # the chunks the run needed: each trace up to its last cut, and the answers; a trace streams on for
    # a moment after its cut (more when the client is behind), which would flatter a slow run
    traced = sum(r.trace_tokens for r in kept if isinstance(r, JobDone))
    answers = [a for a in attempts if a.kind == "answer"]
    chunks = traced + sum(a.output_tokens if a.output_tokens is not None else a.output_tokens_counted for a in answers)
    span = max(a.started_at + (a.latency_s or 0.0) for a in attempts) - min(a.started_at for a in attempts)
    return {
        "workers": workers,
        "jobs": 30 * samples,
        "chunks": chunks,
        "span_s": round(span, 2),
        "wall_s": round(wall, 2),
        "chunks_per_s": round(chunks / span, 0),
        "cpu_us_per_chunk": round(cpu / max(1, chunks) * 1e6, 2),
        "n429": sum(1 for a in attempts if a.error_class == "rate_limit"),
        "load": round((load0 + load_average()) / 2, 1),
    }


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (worker processes are the fork server's children)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def tree_cpu_s(run: subprocess.Popen[bytes]) -> float:
    """CPU seconds of a process and all its descendants until it exits, sampled every 0.1 s (a
    worker's last tenth of a second may be missed; a fork server's children are not waited for by
    the run, so ``RUSAGE_CHILDREN`` would miss them all)."""
    last: dict[int, float] = {}
    while run.poll() is None:
        for pid in descendants(run.pid):
            try:
                last[pid] = process_cpu_s(pid)
            except (OSError, ValueError, IndexError):
                pass
        time.sleep(0.1)
    return sum(last.values())


def show_workers(r: dict[str, float]) -> None:
    print(
        f"anytime run --workers {r['workers']:.0f}: {r['jobs']:.0f} jobs  chunks {r['chunks']:.0f}  "
        f"span {r['span_s']} s (wall {r['wall_s']} s)  {r['chunks_per_s']:.0f} chunks/s  "
        f"cpu {r['cpu_us_per_chunk']} us/chunk (run and workers)  429s {r['n429']:.0f}  load {r['load']}",
        flush=True,
    )


def median_of(runs: list[dict[str, object]], key: str) -> float:
    return round(statistics.median(float(str(r[key])) for r in runs), 2)


def show(which: str, streams: int, r: dict[str, object], ideal_s: float) -> None:
    print(
        f"{which:7s} {streams:5d} streams  done {r['done']}  errors {r['errors']}  chunks {r['chunks']}  "
        f"wall {r['wall_s']} s (ideal {ideal_s:.1f})  cpu {r['cpu_s']} s = {r['cpu_us_per_chunk']} us/chunk  "
        f"{r['rss_kb_per_stream']} KB/stream  {r['chunks_per_s']:.0f} chunks/s  429s {r['n429']}  "
        f"sim cpu {r['sim_cpu_s']} s = {r['sim_cpu_us_per_chunk']} us/chunk  load {r['load']}"
        + (f"  first error: {r['first_error']}" if r["errors"] else ""),
        flush=True,
    )


def summarise(runs: list[dict[str, object]]) -> dict[str, float]:
    keys = ("cpu_us_per_chunk", "rss_kb_per_stream", "chunks_per_s", "wall_s", "sim_cpu_us_per_chunk", "load")
    summary = {key: median_of(runs, key) for key in keys}
    summary["n429"] = max(float(str(r["n429"])) for r in runs)
    summary["errors"] = max(float(str(r["errors"])) for r in runs)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1000,3000", help="stream counts, comma-separated")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--chunk-tokens", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=5.0, help="the simulator's (5: ~120 tokens/s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per stream count (medians)")
    parser.add_argument("--sdk-streams", type=int, default=1000, help="the openai SDK baseline's count (0: none)")
    parser.add_argument("--worker-jobs", type=int, default=1000, help="jobs of the 1 vs 2 worker runs (0: none)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run one client here
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401

            args.loop = "uvloop"
        except ImportError:
            args.loop = "asyncio"
    if args.client:
        result = run_client(args.client, args.base_url, int(args.streams), args.tokens, args.loop, args.chunk_tokens)
        print(json.dumps(result), flush=True)
        return 0

    counts = [int(n) for n in args.streams.split(",")]
    ideal_s = MODEL_TTFT_S * args.time_scale + args.tokens * args.time_scale / MODEL_TPS
    print(
        f"# {args.tokens} tokens per stream in {args.chunk_tokens}-token chunks, time scale {args.time_scale} "
        f"(~{MODEL_TPS / args.time_scale:.0f} tokens/s), {args.loop} loop, {args.repeats} runs each, "
        f"load average {load_average():.1f}",
        flush=True,
    )
    runs: dict[int, list[dict[str, object]]] = {n: [] for n in counts}
    for _ in range(args.repeats):  # rounds over every count, so the machine's load drifts over all alike
        for streams in counts:
            r = one_run("lane", streams, args)
            show("lane", streams, r, ideal_s)
            runs[streams].append(r)
    summaries = {n: summarise(r) for n, r in runs.items()}
    sdk: dict[str, object] | None = None
    if args.sdk_streams:
        sdk = one_run("openai", args.sdk_streams, args)
        show("openai", args.sdk_streams, sdk, ideal_s)
    sharded: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(args.repeats if args.worker_jobs else 0):  # 1 and 2 workers take turns
        for workers in sharded:
            sharded[workers].append(workers_run(workers, args))
            show_workers(sharded[workers][-1])
    print_last_line(summaries, sdk, args.sdk_streams, sharded)
    return 0


def workers_fields(sharded: dict[int, list[dict[str, float]]]) -> dict[str, object]:
    """The 1 vs 2 worker figures for the last line: medians, and their ratio."""
    if not sharded[1]:
        return {}
    med = {
        n: {k: statistics.median(r[k] for r in runs) for k in ("chunks_per_s", "cpu_us_per_chunk")}
        for n, runs in sharded.items()
    }
    return {
        "worker_ratio": round(med[2]["chunks_per_s"] / med[1]["chunks_per_s"], 2),
        "chunks_per_s_1_worker": int(med[1]["chunks_per_s"]),
        "chunks_per_s_2_workers": int(med[2]["chunks_per_s"]),
        "cpu_us_per_chunk_1_worker": round(med[1]["cpu_us_per_chunk"], 2),
        "cpu_us_per_chunk_2_workers": round(med[2]["cpu_us_per_chunk"], 2),
        "worker_jobs": int(sharded[1][0]["jobs"]),
        "n429_workers": int(max(r["n429"] for runs in sharded.values() for r in runs)),
    }


def print_last_line(
    summaries: dict[int, dict[str, float]],
    sdk: dict[str, object] | None,
    sdk_streams: int,
    sharded: dict[int, list[dict[str, float]]],
) -> None:
    top = max(summaries)
    s = summaries[top]
    # the order: cpu_us_per_chunk, kb_per_stream, worker_ratio, n429 (every run's)
    workers = workers_fields(sharded)
    fields: dict[str, object] = {
        "cpu_us_per_chunk": s["cpu_us_per_chunk"],
        "kb_per_stream": s["rss_kb_per_stream"],
        **({"worker_ratio": workers.pop("worker_ratio")} if workers else {}),
        "n429": max(int(s["n429"]), int(str(workers.get("n429_workers", 0)))),
        "streams": top,
        "errors": int(s["errors"]),
        "chunks_per_s": int(s["chunks_per_s"]),
        "wall_s": s["wall_s"],
        "sim_cpu_us_per_chunk": s["sim_cpu_us_per_chunk"],
    }
    for n, other in sorted(summaries.items()):
        if n != top:
            fields |= {
                f"cpu_us_per_chunk_{n}": other["cpu_us_per_chunk"],
                f"kb_per_stream_{n}": other["rss_kb_per_stream"],
                f"chunks_per_s_{n}": int(other["chunks_per_s"]),
                f"wall_s_{n}": other["wall_s"],
            }
    if sdk is not None:
        fields |= {
            f"openai_cpu_us_per_chunk_{sdk_streams}": sdk["cpu_us_per_chunk"],
            f"openai_kb_per_stream_{sdk_streams}": sdk["rss_kb_per_stream"],
        }
    fields |= workers
    fields["load"] = max(x["load"] for x in summaries.values())
    print(" ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    sys.exit(main())
