"""`anytime ledger summary|export|verify RUN`: read a run's ledger without running anything."""

from __future__ import annotations

import argparse
import sys

import msgspec
from rich.console import Console

from runner.cli.conventions import ExitCode, add_subcommand, run_folder
from runner.ledger.audit import export_csv, summarise, verify
from runner.ledger.reader import iter_records
from runner.ui.ledger import print_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    summary = add_subcommand(
        sub,
        "summary",
        "dollars and tokens per problem and call kind, with totals",
        "anytime ledger summary ledgers/demo\n  anytime ledger summary ledgers/demo --top 5\n"
        "  anytime ledger summary ledgers/demo --json | jq '.[-1].total_usd'",
    )
    summary.add_argument("run", help="run folder (ledgers/<run name>)")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary.add_argument("--top", type=int, metavar="N", help="only the N most expensive problems (totals stay whole)")
    export = add_subcommand(
        sub,
        "export",
        "attempts or snapshots as CSV",
        "anytime ledger export ledgers/demo --csv > attempts.csv\n"
        "  anytime ledger export ledgers/demo --csv --snapshots --out snapshots.csv",
    )
    export.add_argument("run", help="run folder (ledgers/<run name>)")
    export.add_argument("--csv", action="store_true", required=True, help="CSV output (the only format)")
    export.add_argument("--snapshots", action="store_true", help="export graded snapshots instead of attempts")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    verify = add_subcommand(
        sub,
        "verify",
        "recompute every dollar and check the ledger's integrity (exit 1 on a problem)",
        "anytime ledger verify ledgers/demo",
    )
    verify.add_argument("run", help="run folder (ledgers/<run name>)")


def main(args: argparse.Namespace) -> int:
    run_dir = run_folder(args.run)
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
    return ExitCode.DONE if report.ok else ExitCode.FAILED
