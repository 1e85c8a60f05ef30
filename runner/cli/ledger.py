"""`anytime ledger summary|export|verify RUN`: read a run's ledger without running anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec
from rich.console import Console

from runner.errors import ConfigError
from runner.ledger.audit import export_csv, summarise, verify
from runner.ledger.reader import iter_records, ledger_path
from runner.ui.ledger import print_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    summary = sub.add_parser("summary", help="dollars and tokens per problem and call kind, with totals")
    summary.add_argument("run", help="run folder (ledgers/<run name>)")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary.add_argument("--top", type=int, metavar="N", help="only the N most expensive problems (totals stay whole)")
    export = sub.add_parser("export", help="attempts or snapshots as CSV")
    export.add_argument("run", help="run folder (ledgers/<run name>)")
    export.add_argument("--csv", action="store_true", required=True, help="CSV output (the only format)")
    export.add_argument("--snapshots", action="store_true", help="export graded snapshots instead of attempts")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    verify = sub.add_parser("verify", help="recompute every dollar and check the ledger's integrity")
    verify.add_argument("run", help="run folder (ledgers/<run name>)")


def main(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not ledger_path(run_dir).exists():
        raise ConfigError(f"{run_dir}: no ledger.jsonl here; is this a run folder (ledgers/<run name>)?")
    if args.ledger_command == "summary":
        rows = summarise(iter_records(run_dir))
        if args.top is not None:
            rows = [*sorted(rows[:-1], key=lambda r: -r.total_usd)[: args.top], rows[-1]]
        if args.json:
            print(msgspec.json.encode([msgspec.structs.asdict(r) for r in rows]).decode())
        else:
            print_summary(rows, Console(width=max(Console().width, 120)), title=str(run_dir))
        return 0
    if args.ledger_command == "export":
        what = "snapshots" if args.snapshots else "attempts"
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as f:
                count = export_csv(iter_records(run_dir), what, f)
            print(f"wrote {count} {what} to {args.out}", file=sys.stderr)
        else:
            export_csv(iter_records(run_dir), what, sys.stdout)
        return 0
    report = verify(run_dir)
    print(report.render())
    return 0 if report.ok else 1
