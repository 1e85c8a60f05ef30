"""`anytime ledger summary|export|verify RUN`: read a run's ledger without re-running anything."""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import TextIO

import msgspec
from rich.console import Console
from rich.table import Table

from runner.errors import LedgerError
from runner.events import Usage
from runner.ledger import iter_records
from runner.pricing import ModelPrice, attempt_cost
from runner.records import Attempt, JobDone, Note, RunHeader, Snapshot

TOLERANCE_USD = 1e-9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    summary = sub.add_parser("summary", help="dollars and tokens per problem and call kind, with totals")
    summary.add_argument("run", help="run folder (ledgers/<run name>)")
    summary.add_argument("--top", type=int, default=20, help="show the N most expensive problems (default 20)")
    export = sub.add_parser("export", help="attempts (or snapshots) as CSV")
    export.add_argument("run", help="run folder")
    export.add_argument("--csv", action="store_true", help="CSV output (the default and only format)")
    export.add_argument("--snapshots", action="store_true", help="export graded snapshots instead of attempts")
    export.add_argument("--out", help="write to this file instead of standard output")
    verify = sub.add_parser("verify", help="recompute every dollar from tokens and prices; check integrity")
    verify.add_argument("run", help="run folder")


def main(args: argparse.Namespace) -> int:
    run = Path(args.run)
    if args.ledger_command == "summary":
        return summary(run, Console(), args.top)
    if args.ledger_command == "export":
        if args.out:
            with open(args.out, "w", newline="") as f:
                return export(run, f, args.snapshots)
        return export(run, sys.stdout, args.snapshots)
    return verify(run, Console())


def summary(run: Path, console: Console, top: int) -> int:
    job_problem: dict[str, tuple[str, str, str]] = {}
    by_job: dict[str, Counter[str]] = defaultdict(Counter)
    usd_job: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: Counter[str] = Counter()
    usd_total: dict[str, float] = defaultdict(float)
    for rec in iter_records(run):
        if isinstance(rec, Attempt):
            out = rec.output_tokens if rec.output_tokens is not None else rec.output_tokens_counted
            inp = rec.input_tokens if rec.input_tokens is not None else rec.input_tokens_counted
            by_job[rec.job_id][f"{rec.kind}_in"] += inp
            by_job[rec.job_id][f"{rec.kind}_out"] += out
            usd_job[rec.job_id][rec.kind] += rec.usd
            totals[f"{rec.kind}_calls"] += 1
            totals[f"{rec.kind}_in"] += inp
            totals[f"{rec.kind}_out"] += out
            usd_total[rec.kind] += rec.usd
        elif isinstance(rec, JobDone):
            job_problem[rec.job_id] = (rec.dataset, rec.problem_id, rec.model)
    per_problem: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for job_id, kinds in usd_job.items():
        key = job_problem.get(job_id) or (
            ("synthesis", job_id.split(":")[2], "") if job_id.startswith("synthesis:") else ("(unfinished)", job_id, "")
        )
        for kind, usd in kinds.items():
            per_problem[key][kind] += usd
        for name, n in by_job[job_id].items():
            per_problem[key][name] += n
    table = Table(title=f"{run.name}: most expensive problems", title_justify="left")
    for col in ("dataset", "problem", "model", "$ trace", "$ answer", "$ synth", "$ total", "tok in", "tok out"):
        table.add_column(
            col,
            justify="left" if col in ("dataset", "problem", "model") else "right",
            no_wrap=col in ("problem", "model"),
        )
    ranked = sorted(per_problem.items(), key=lambda kv: -sum(kv[1].get(k, 0) for k in ("trace", "answer", "synthesis")))
    for (dataset, problem, model), v in ranked[:top]:
        usd = [v.get(k, 0.0) for k in ("trace", "answer", "synthesis")]
        tin = sum(v.get(f"{k}_in", 0) for k in ("trace", "answer", "synthesis"))
        tout = sum(v.get(f"{k}_out", 0) for k in ("trace", "answer", "synthesis"))
        table.add_row(
            dataset, problem, model, *(f"{x:.5f}" for x in usd), f"{sum(usd):.5f}", f"{tin:,.0f}", f"{tout:,.0f}"
        )
    console.print(table)
    kinds = Table(title="totals by call kind", title_justify="left")
    for col in ("kind", "calls", "input tokens", "output tokens", "dollars"):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for kind in ("trace", "answer", "synthesis"):
        if totals[f"{kind}_calls"]:
            kinds.add_row(
                kind,
                f"{totals[f'{kind}_calls']:,}",
                f"{totals[f'{kind}_in']:,}",
                f"{totals[f'{kind}_out']:,}",
                f"${usd_total[kind]:.4f}",
            )
    kinds.add_row(
        "all",
        f"{sum(totals[f'{k}_calls'] for k in ('trace', 'answer', 'synthesis')):,}",
        "",
        "",
        f"${sum(usd_total.values()):.4f}",
    )
    console.print(kinds)
    return 0


def export(run: Path, out: TextIO, snapshots: bool) -> int:
    kind = Snapshot if snapshots else Attempt
    fields = list(kind.__struct_fields__)
    writer = csv.writer(out)
    writer.writerow(fields)
    for rec in iter_records(run):
        if isinstance(rec, kind):
            writer.writerow(["" if getattr(rec, f) is None else getattr(rec, f) for f in fields])
    return 0


def verify(run: Path, console: Console) -> int:
    """Recompute every attempt's dollars; check call ids, job completions and the run headers."""
    problems: list[str] = []
    prices: dict[str, ModelPrice] = {}
    seen_attempts: set[tuple[str, int]] = set()
    done_jobs: Counter[str] = Counter()
    n_attempts = 0
    total = 0.0
    try:
        for line_no, rec in enumerate(iter_records(run), 1):
            if isinstance(rec, RunHeader):
                for model, price in rec.prices.items():
                    prices[model] = msgspec.convert(price, ModelPrice)
            elif isinstance(rec, Attempt):
                n_attempts += 1
                total += rec.usd
                key = (rec.call_id, rec.attempt)
                if key in seen_attempts:
                    problems.append(f"record {line_no}: attempt {rec.attempt} of call {rec.call_id} appears twice")
                seen_attempts.add(key)
                price = prices.get(rec.model)
                if price is None:
                    problems.append(f"record {line_no}: no price in any run header for model {rec.model!r}")
                    continue
                usage = None
                if rec.priced_from in ("reported", "billed") and rec.input_tokens is not None:
                    usage = Usage(
                        input_tokens=rec.input_tokens,
                        output_tokens=rec.output_tokens or 0,
                        cached_input_tokens=rec.cached_input_tokens or 0,
                        billed_usd=rec.billed_usd,
                    )
                usd, source = attempt_cost(price, usage, rec.input_tokens_counted, rec.output_tokens_counted)
                if source != rec.priced_from or abs(usd - rec.usd) > TOLERANCE_USD:
                    problems.append(
                        f"record {line_no}: call {rec.call_id} attempt {rec.attempt} says ${rec.usd:.8f} "
                        f"({rec.priced_from}); its tokens and price give ${usd:.8f} ({source})"
                    )
            elif isinstance(rec, JobDone):
                done_jobs[rec.job_id] += 1
            elif isinstance(rec, Note) and rec.kind == "torn_line":
                console.print(f"note: {rec.message}")
    except LedgerError as exc:
        problems.append(str(exc))
    for job_id, n in done_jobs.items():
        if n > 1:
            problems.append(f"job {job_id} is recorded complete {n} times")
    if not prices:
        problems.append("no run header with prices")
    if problems:
        console.print(f"[red]{run}: {len(problems)} problem(s)[/]")
        for p in problems[:50]:
            console.print(f"  {p}")
        if len(problems) > 50:
            console.print(f"  … and {len(problems) - 50} more")
        return 1
    console.print(
        f"[green]{run}: ok[/]: {n_attempts:,} attempts, ${total:.6f} recomputed from tokens and prices, "
        f"{sum(done_jobs.values()):,} jobs complete once each"
    )
    return 0
