"""Ledger write rate with fsync batching, against fsync per record, and resume time on 1M records.

1. ``batched``: N attempt records (the largest record kind, ~580 bytes of JSON each, varied
   fields) appended through `runner.ledger.writer.open_ledger` with its default batching (512 records or
   50 ms per fsync). The producer yields to the event loop every 64 appends, as the scheduler does
   between calls, so the flusher runs concurrently; the clock stops after ``await flush()`` (all
   durable).
2. ``per_record``: the baseline, kept apart from our writer: the plain way to make every record
   durable, one ``os.write`` and one ``os.fsync`` per record on an ``O_APPEND`` file (lines
   encoded by the same codec, so only the durability scheme differs), on a few thousand records.
   (It used to be our own writer with ``batch_records=1``, which charged the baseline our
   flusher's task and thread hops as well.)
3. ``resume``: a ledger of M records shaped like a real run (per job: one trace attempt, five
   answer attempts, six snapshots, one completion record; a run header first) written straight to
   disk in the ledger's own line codec (`runner.ledger.records.encode_line_into`), then
   `runner.ledger.reader.load_state` timed on it (the page cache is warm: it was just written),
   and then `open_ledger` (torn-tail check and the scan for calls a crash left in flight).

Usage: ``python bench/ledger.py [--records 200000 --baseline 2000 --resume-records 1000000]``.
The last line holds ``records_per_s=``, ``per_record_fsync_per_s=``, ``speedup=``, ``resume_s=``,
``reopen_s=``.
"""

from __future__ import annotations

import os
import sys

# this folder is sys.path[0] and holds scripts named like stdlib modules (bench/tokenize.py)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import anyio  # noqa: E402
import anyio.lowlevel  # noqa: E402

from runner.ledger.reader import ledger_path, load_state  # noqa: E402
from runner.ledger.records import Attempt, JobDone, Record, RunHeader, Snapshot, encode_line_into  # noqa: E402
from runner.ledger.writer import open_ledger  # noqa: E402


def _lines(records: list[Record]) -> bytearray:
    """Records as ledger lines, by the ledger's own codec."""
    out = bytearray()
    for record in records:
        encode_line_into(record, out)
    return out


def attempt(i: int, job: str, kind: str = "answer") -> Attempt:
    return Attempt(
        call_id=f"{i:016x}",
        job_id=job,
        kind=kind,
        provider="openai",
        model="reasoner",
        attempt=1,  # type: ignore[arg-type]
        status="ok",
        budget=None if kind == "trace" else 256 << (i % 5),
        http_status=200,
        input_tokens=400 + i % 97,
        cached_input_tokens=(i % 3) * 128,
        output_tokens=12 + i % 31,
        reasoning_tokens=0,
        input_tokens_counted=401 + i % 97,
        output_tokens_counted=12 + i % 31,
        priced_from="reported",
        usd=(400 + i % 97) * 2e-6 + (12 + i % 31) * 8e-6,
        started_at=1.79e9 + i * 0.01,
        latency_s=0.5 + i % 7 / 10,
        ttft_s=0.2,
        request_id=f"req_{i:024x}",
    )


async def batched(run_dir: Path, n: int) -> float:
    records = [attempt(i, f"{i // 6:016x}") for i in range(n)]  # built first: time the ledger, not the Structs
    async with open_ledger(run_dir) as writer:
        t0 = time.perf_counter()
        for i, record in enumerate(records):
            writer.append(record)
            if i % 64 == 63:
                await anyio.lowlevel.checkpoint()
        await writer.flush()
        elapsed = time.perf_counter() - t0
    return n / elapsed


def per_record(run_dir: Path, n: int) -> float:
    """The baseline: write and fsync each record on its own (no batching, no writer of ours)."""
    records = [attempt(i, f"{i // 6:016x}") for i in range(n)]
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(ledger_path(run_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        t0 = time.perf_counter()
        for record in records:
            line = bytearray()
            encode_line_into(record, line)
            os.write(fd, line)
            os.fsync(fd)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
    return n / elapsed


async def reopen(run_dir: Path) -> None:
    async with open_ledger(run_dir):
        pass


def write_run(run_dir: Path, total: int) -> int:
    """A ledger of about `total` records shaped like a real run; returns its size in bytes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    header = RunHeader(
        run_id="bench",
        tool_version="0",
        started_at=0.0,
        manifest_path="m.toml",
        manifest_sha256="0" * 64,
        manifest={},
        prices={"reasoner": {"input": 2.0, "output": 8.0}},
    )
    with open(ledger_path(run_dir), "wb") as f:
        f.write(_lines([header]))
        written, job = 1, 0
        while written < total:
            job_id = f"{job:016x}"
            chunk = [attempt(written, job_id, "trace")]
            chunk += [attempt(written + a, job_id) for a in range(1, 6)]
            chunk += [
                Snapshot(
                    job_id=job_id,
                    instance="i",
                    model="reasoner",
                    dataset="aime",
                    problem_id=f"p{job}",
                    method="cot",
                    sample=0,
                    budget=256 << b,
                    tokens=256 << b,
                    answer="42",
                    score=float(b % 2),
                )
                for b in range(6)
            ]
            chunk.append(
                JobDone(
                    job_id=job_id,
                    instance="i",
                    model="reasoner",
                    dataset="aime",
                    problem_id=f"p{job}",
                    method="cot",
                    sample=0,
                    fidelity="raw",
                    trace_tokens=8192,
                    trace_finish="length",
                )
            )
            f.write(_lines(chunk[: total - written]))
            written += len(chunk)
            job += 1
        f.flush()
        os.fsync(f.fileno())
    return ledger_path(run_dir).stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--baseline", type=int, default=2_000)
    parser.add_argument("--resume-records", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to write (default: a temporary folder, removed after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        rate = anyio.run(batched, root / "batched", args.records)
        size = ledger_path(root / "batched").stat().st_size
        print(
            f"batched    {args.records:>9,} records  {size / args.records:5.0f} B/record  {rate:>10,.0f} records/s",
            flush=True,
        )
        base = per_record(root / "per_record", args.baseline)
        print(
            f"per record {args.baseline:>9,} records                  {base:>10,.0f} records/s  "
            f"(batched is {rate / base:,.0f}x)",
            flush=True,
        )
        size = write_run(root / "resume", args.resume_records)
        t0 = time.perf_counter()
        state = load_state(root / "resume")
        resume_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        anyio.run(reopen, root / "resume")  # torn-tail check and in-flight recovery scan
        open_s = time.perf_counter() - t0
        print(
            f"resume     {args.resume_records:>9,} records  {size / 1e6:,.0f} MB  load_state {resume_s:.2f} s  "
            f"({len(state.completed_jobs):,} jobs done, {state.attempts:,} attempts, ${state.total_usd:,.2f}); "
            f"reopen for writing {open_s:.2f} s",
            flush=True,
        )
    fields = {
        "records": args.records,
        "records_per_s": round(rate),
        "per_record_fsync_per_s": round(base),
        "speedup": round(rate / base),
        "resume_records": args.resume_records,
        "resume_s": round(resume_s, 2),
        "reopen_s": round(open_s, 2),
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
