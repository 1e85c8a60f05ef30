"""Transcripts at paper scale: a run with them on against the same run with them off, and their codec.

1. ``run``: the paper's design (`manifests/paper-aime.toml`: 6 models x 3 methods x 30 AIME
   problems x 3 samples = 1,620 jobs, budgets 512 … 16,384, PDP pools) swept by the product's
   `Sweep` against the simulator in the same process, once with transcripts off and once on,
   alternating, ``--repeats`` times each, every run in a fresh subprocess. The simulated models
   keep the paper's mix (three reasoning models streaming raw thinking, three chain-of-thought
   models) at realistic trace lengths: ``--reasoning-tokens`` and ``--cot-tokens`` set their typical
   untruncated trace (the simulator draws each trace around it; reasoning traces mostly run past
   the last budget, as AIME traces of reasoning models do). The simulator has no delays
   (``time_scale = 0``): the run is CPU-bound, the worst case for the transcripts' share of its wall
   time (a real run waits on providers for minutes: see ``least_wall_s``). Figures: wall time and
   process CPU (the simulator's included, on both sides) and the file's size.
2. ``codec``: the simulator writes filler text that compresses far better than real reasoning.
   So the on-run's own transcript records, batch for batch as its writer grouped them, get their
   texts replaced by text of the same lengths drawn from a word-level Markov chain trained on
   English technical prose (this repository's and ../shared's documents), and are compressed
   again: by the product (`encode_member`, gzip levels 1, 6 and 9) and by the baseline,
   zstandard (levels 3 and 9, one frame per batch, the `bench` extra). Figures: size on disk,
   compression CPU, decompression CPU. The prose itself is compressed too, to show the chain's
   text is no easier to compress than real prose.

Writing transcripts costs the transcriber's CPU on the event loop (counted in the on-runs by a
subclass around the product's `Transcriber`) plus the writer's compression in its thread (gzip-6 on
the realistic records): ``writing_cpu_s``, over the simulated run's wall time (``writing_cpu_pct``,
the worst case) and over the real run's least wall time, the estimate's for
`manifests/paper-aime.toml` (``writing_pct_of_least_wall``: the rate limits bind; real providers
also take minutes per trace).

Usage: ``python bench/transcripts.py [--repeats 2 --problems 30 --samples 3 --reasoning-tokens 12000
--cot-tokens 2500]`` (about 40 minutes on 2 loaded cores). The last line holds ``jobs=``,
``wall_off_s=``, ``wall_on_s=``, ``cpu_off_s=``, ``cpu_on_s=``, ``writing_cpu_s=``,
``writing_cpu_pct=``, ``writing_pct_of_least_wall=``, ``size_mb=``, ``realistic_gzip6_mb=``,
``zstd3_mb=`` and the other codecs' figures.
"""

from __future__ import annotations

import os
import sys

# this folder is sys.path[0] and holds scripts named like stdlib modules (bench/tokenize.py)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402
import msgspec  # noqa: E402

import runner.engine.sweep as sweep_module  # noqa: E402
from anytime_sim import open_simulator  # noqa: E402
from anytime_sim.models import BUILTIN_MODELS, SimConfig  # noqa: E402
from runner.config.manifest import load_manifest  # noqa: E402
from runner.engine.sweep import Sweep, SweepOptions, no_display  # noqa: E402
from runner.engine.transcribe import Transcriber  # noqa: E402
from runner.ledger.estimate import estimate_manifest  # noqa: E402
from runner.ledger.transcripts import (  # noqa: E402
    CallText,
    SharedText,
    StoredMessage,
    TranscriptRecord,
    encode_line_into,
    encode_member,
    read_member,
    transcripts_path,
    walk,
)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
# the paper's six models, as simulated models of the same kind: (manifest key, simulated model, reasons)
MODELS = (
    ("grok-3-mini", "sim-grok-3-mini", True),
    ("gpt-oss-120b", "sim-gpt-oss-120b", True),
    ("reasoner", "sim-reasoner-large", True),
    ("grok-3", "sim-grok-3", False),
    ("gpt-4-1", "sim-gpt-4.1", False),
    ("llama-3-3-70b", "sim-llama-3.3-70b", False),
)


def manifest_text(url: str, folder: Path, problems: int, samples: int) -> str:
    models = "\n".join(
        f'[models.{key}]\nprovider = "sim"\nmodel = "{sim}"\ntemperature = 0.7\n' for key, sim, _ in MODELS
    )
    return f"""
[run]
name = "paper"
seed = 2026
ledger_dir = "{folder}"
confirm_above_usd = 1000000.0

[providers.sim]
kind = "sim"
base_url = "{url}/v1"
max_concurrency = 64

{models}
[methods.base]
kind = "cot"
[methods.pdp]
kind = "pdp"
k = 4
m = 3
[methods.pdp_plus]
kind = "pdp_plus"
k = 4
m = 3

[datasets.aime24]
kind = "aime"
path = "{DATA / "aime_2024_2025.jsonl"}"
limit = {problems}
pool = 8
budgets = [512, 1024, 2048, 4096, 8192, 16384]

[sweep]
samples = {samples}
"""


class TimedTranscriber(Transcriber):
    """The product's `Transcriber`, its CPU on the event loop counted (the writer thread counts its own)."""

    cpu_s = 0.0

    def job(self, *args: Any, **kwargs: Any) -> None:
        started = _thread_cpu()
        super().job(*args, **kwargs)
        TimedTranscriber.cpu_s += _thread_cpu() - started

    def trace(self, *args: Any, **kwargs: Any) -> None:
        started = _thread_cpu()
        super().trace(*args, **kwargs)
        TimedTranscriber.cpu_s += _thread_cpu() - started

    def answer(self, *args: Any, **kwargs: Any) -> None:
        started = _thread_cpu()
        super().answer(*args, **kwargs)
        TimedTranscriber.cpu_s += _thread_cpu() - started

    def grade(self, *args: Any, **kwargs: Any) -> None:
        started = _thread_cpu()
        super().grade(*args, **kwargs)
        TimedTranscriber.cpu_s += _thread_cpu() - started


def _thread_cpu() -> float:
    """This thread's CPU seconds (getrusage: a fraction of a microsecond, where time.thread_time can
    take a millisecond on a loaded virtual machine)."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


async def _sweep(on: bool, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    lengths = {sim: args.reasoning_tokens if reasons else args.cot_tokens for _, sim, reasons in MODELS}
    models = dict(BUILTIN_MODELS)
    models.update({name: msgspec.structs.replace(models[name], natural_tokens=n) for name, n in lengths.items()})
    config = SimConfig(time_scale=0.0, chunk_tokens=args.chunk_tokens, models=models)
    async with open_simulator(config, [("aime", DATA / "aime_2024_2025.jsonl")]) as sim:
        path = folder / "paper.toml"
        path.write_text(manifest_text(sim.base_url, folder, args.problems, args.samples))
        sweep_module.Transcriber = TimedTranscriber  # type: ignore[attr-defined]  # counts, then calls the product's
        sweep = Sweep(load_manifest(path), SweepOptions(transcripts=on))
        cpu0, wall0 = _cpu(), time.perf_counter()
        outcome = await sweep.run(no_display)
        wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    file = transcripts_path(outcome.run_dir)
    stats = outcome.transcripts
    return {
        "writer_busy_s": stats.busy_s if stats else 0.0,
        "transcriber_cpu_s": TimedTranscriber.cpu_s,
        "raw_bytes": stats.raw_bytes if stats else 0,
        "wall_s": wall,
        "cpu_s": cpu,
        "jobs": outcome.jobs_run,
        "failed": outcome.jobs_failed,
        "bytes": file.stat().st_size if file.exists() else 0,
        "run_dir": str(outcome.run_dir),  # type: ignore[dict-item]
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: the writer's compression included
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> int:
    result = anyio.run(_sweep, args.one == "on", Path(args.folder), args, backend="asyncio")
    print(json.dumps(result))
    return 0


def run_once(mode: str, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", mode, "--folder", str(folder)]
    command += [
        "--problems",
        str(args.problems),
        "--samples",
        str(args.samples),
        "--chunk-tokens",
        str(args.chunk_tokens),
    ]
    command += ["--reasoning-tokens", str(args.reasoning_tokens), "--cot-tokens", str(args.cot_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---- realistic text -----------------------------------------------------------------------------------


def _corpus() -> str:
    paths = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md", REPO / "bench" / "README.md"]
    paths += sorted((REPO.parent / "shared" / "docs").glob("*.md"))
    return "\n\n".join(p.read_text(encoding="utf-8") for p in paths if p.is_file())


def markov_pool(corpus: str, size: int, seed: int = 0, jump: float = 0.5) -> str:
    """``size`` characters of new text with English statistics: each word follows the last as in
    ``corpus`` (an order-1 word chain), or with probability ``jump`` is any word of it; 0.5 makes
    text that gzip compresses no better than the prose itself (checked and printed by `report`)."""
    words = re.findall(r"\S+\s*", corpus)
    following: dict[str, list[str]] = defaultdict(list)
    for first, second in itertools.pairwise(words):
        following[first].append(second)
    rng = random.Random(seed)
    out, length, word = [], 0, rng.choice(words)
    while length < size:
        out.append(word)
        length += len(word)
        word = rng.choice(words) if rng.random() < jump else rng.choice(following.get(word) or words)
    return "".join(out)[:size]


class Texts:
    """Same-length stand-ins for simulated text, cut from random places of a Markov pool."""

    def __init__(self, pool: str, seed: int = 1) -> None:
        self.pool, self.rng = pool, random.Random(seed)

    def like(self, text: str) -> str:
        if len(text) < 64:
            return text  # answers, short contents: keep them
        start = self.rng.randrange(0, len(self.pool) - len(text))
        return self.pool[start : start + len(text)]

    def record(self, record: TranscriptRecord) -> TranscriptRecord:
        if isinstance(record, SharedText):
            return msgspec.structs.replace(record, text=self.like(record.text))
        if isinstance(record, CallText):
            messages = [self._message(m) for m in record.messages]
            return msgspec.structs.replace(
                record, reasoning=self.like(record.reasoning), content=self.like(record.content), messages=messages
            )
        return record

    def _message(self, message: StoredMessage) -> StoredMessage:
        return message if message.splices else msgspec.structs.replace(message, content=self.like(message.content))


def realistic_batches(run_dir: Path, texts: Texts | None) -> list[bytes]:
    """The run's transcript records, batch for batch as its writer made them, with realistic texts
    (``texts`` None: as the run wrote them)."""
    path = transcripts_path(run_dir)
    decoder = msgspec.json.Decoder(TranscriptRecord)
    batches = []
    with open(path, "rb") as handle:
        for member in walk(path).members:
            out = bytearray()
            for record in decoder.decode_lines(read_member(handle, member, path)):
                encode_line_into(texts.record(record) if texts else record, out)
            batches.append(bytes(out))
    return batches


def codec_figures(batches: list[bytes]) -> dict[str, dict[str, float]]:
    import zstandard  # the baseline (bench extra)

    def gzip_level(level: int) -> tuple[list[bytes], float]:
        t0 = time.process_time()
        out = [encode_member(b, level) for b in batches]
        return out, time.process_time() - t0

    def zstd_level(level: int) -> tuple[list[bytes], float]:
        compressor = zstandard.ZstdCompressor(level=level)
        t0 = time.process_time()
        out = [compressor.compress(b) for b in batches]
        return out, time.process_time() - t0

    figures: dict[str, dict[str, float]] = {}
    for name, run in (
        ("gzip1", lambda: gzip_level(1)),
        ("gzip6", lambda: gzip_level(6)),
        ("gzip9", lambda: gzip_level(9)),
        ("zstd3", lambda: zstd_level(3)),
        ("zstd9", lambda: zstd_level(9)),
    ):
        members, cpu = run()
        t0 = time.process_time()
        if name.startswith("gzip"):
            for m in members:
                zlib.decompress(m, wbits=31)
        else:
            decompressor = zstandard.ZstdDecompressor()
            for m in members:
                decompressor.decompress(m)
        figures[name] = {
            "mb": sum(len(m) for m in members) / 1e6,
            "cpu_s": cpu,
            "decompress_s": time.process_time() - t0,
        }
    return figures


# ---- the parent -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode, alternating (default 2)")
    parser.add_argument("--problems", type=int, default=30, help="AIME problems (default 30: the paper)")
    parser.add_argument("--samples", type=int, default=3, help="samples per problem (default 3: the paper)")
    parser.add_argument("--reasoning-tokens", type=int, default=12000, help="typical reasoning trace (tokens)")
    parser.add_argument("--cot-tokens", type=int, default=2500, help="typical chain-of-thought trace (tokens)")
    parser.add_argument("--chunk-tokens", type=int, default=16, help="tokens per streamed chunk (default 16)")
    parser.add_argument("--one", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return child(args)
    least_wall = estimate_manifest(load_manifest(REPO / "manifests" / "paper-aime.toml")).min_wall_s or 0.0
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for mode in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                folder = Path(tmp) / f"{mode}-{repeat}"
                folder.mkdir()
                result = run_once(mode, folder, args)
                results[mode].append(result)
                print(
                    f"run {repeat + 1}/{args.repeats} transcripts {mode:3}: {result['jobs']:.0f} jobs "
                    f"({result['failed']:.0f} failed), wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, "
                    f"file {result['bytes'] / 1e6:.1f} MB ({result['raw_bytes'] / 1e6:.1f} MB raw), "
                    f"writer thread busy {result['writer_busy_s']:.2f} s, "
                    f"transcriber CPU on the loop {result.get('transcriber_cpu_s', 0.0):.2f} s",
                    flush=True,
                )
        last_on = Path(str(results["on"][-1]["run_dir"]))
        corpus = _corpus()
        pool = markov_pool(corpus, 16_000_000)
        batches = realistic_batches(last_on, Texts(pool))
        codecs = codec_figures(batches)
        simulated = realistic_batches(last_on, None)
        started = time.process_time()
        sim_mb = sum(len(encode_member(b, 6)) for b in simulated) / 1e6
        codecs["sim_gzip6"] = {"mb": sim_mb, "cpu_s": time.process_time() - started, "decompress_s": 0.0}
    report(results, codecs, batches, corpus, pool, least_wall)
    return 0


def report(
    results: dict[str, list[dict[str, float]]],
    codecs: dict[str, dict[str, float]],
    batches: list[bytes],
    corpus: str,
    pool: str,
    least_wall: float,
) -> None:
    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    raw_mb = sum(len(b) for b in batches) / 1e6
    print(f"realistic records: {raw_mb:.1f} MB raw in {len(batches)} batches (members) as the run's writer made them")
    prose = corpus.encode()
    pool_sample = pool[: len(corpus)].encode()
    print(
        f"gzip-6 ratio: English prose {len(prose) / len(zlib.compress(prose, 6)):.2f}, "
        f"the Markov text {len(pool_sample) / len(zlib.compress(pool_sample, 6)):.2f} (lower: no easier to compress)"
    )
    for name, f in codecs.items():
        print(
            f"  {name}: {f['mb']:.1f} MB on disk, compress {f['cpu_s']:.2f} s CPU, "
            f"decompress {f['decompress_s']:.2f} s CPU"
        )
    wall_off, wall_on = median("off", "wall_s"), median("on", "wall_s")
    cpu_off, cpu_on = median("off", "cpu_s"), median("on", "cpu_s")
    # writing costs the transcriber's work on the event loop plus the writer's compression, taken on
    # the realistic text (gzip-6, in `codec_figures`; the simulator's filler compresses faster)
    writing_cpu = median("on", "transcriber_cpu_s") + codecs["gzip6"]["cpu_s"]
    fields = {
        "jobs": int(median("on", "jobs")),
        "wall_off_s": round(wall_off, 1),
        "wall_on_s": round(wall_on, 1),
        "wall_overhead_pct": round(100 * (wall_on - wall_off) / wall_off, 2),
        "cpu_off_s": round(cpu_off, 1),
        "cpu_on_s": round(cpu_on, 1),
        "cpu_overhead_pct": round(100 * (cpu_on - cpu_off) / wall_off, 2),
        "transcriber_cpu_s": round(median("on", "transcriber_cpu_s"), 2),
        "sim_gzip6_cpu_s": round(codecs["sim_gzip6"]["cpu_s"], 2),
        "writing_cpu_s": round(writing_cpu, 2),
        "writing_cpu_pct": round(100 * writing_cpu / wall_on, 2),
        "size_mb": round(median("on", "bytes") / 1e6, 2),
        "realistic_raw_mb": round(raw_mb, 1),
        "realistic_gzip6_mb": round(codecs["gzip6"]["mb"], 2),
        "gzip6_cpu_s": round(codecs["gzip6"]["cpu_s"], 2),
        "gzip1_mb": round(codecs["gzip1"]["mb"], 2),
        "gzip1_cpu_s": round(codecs["gzip1"]["cpu_s"], 2),
        "zstd3_mb": round(codecs["zstd3"]["mb"], 2),
        "zstd3_cpu_s": round(codecs["zstd3"]["cpu_s"], 2),
        "zstd9_mb": round(codecs["zstd9"]["mb"], 2),
        "zstd9_cpu_s": round(codecs["zstd9"]["cpu_s"], 2),
        "least_wall_s": round(least_wall, 1),
        "writing_pct_of_least_wall": round(100 * writing_cpu / least_wall, 2) if least_wall else None,
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    sys.exit(main())
