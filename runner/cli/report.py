"""`anytime report RUN [RUN ...]`: quality per budget, Anytime Index and dollars, from the ledger alone."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from runner.analysis.report import Report, build_report
from runner.cli.conventions import run_folder
from runner.errors import ConfigError
from runner.ui.report_files import print_report, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) holding ledger.jsonl")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="set the runs side by side, and each later run against the first: differences in Q(b) and the "
        "Anytime Index with paired bootstrap intervals (pairing by problem)",
    )
    parser.add_argument(
        "--intersect",
        action="store_true",
        help="with --compare: compare on the problems both runs have (refused otherwise when they differ)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    if args.intersect and not args.compare:
        raise ConfigError("--intersect only applies with --compare")
    if args.compare and len(args.runs) < 2:
        raise ConfigError("--compare needs two or more run folders: anytime report RUN_A RUN_B --compare")
    report = build_report([run_folder(run) for run in args.runs], compare=args.compare, intersect=args.intersect)
    written: list[Path] = []
    for run in report.runs:  # each run folder gets its own report files
        single = Report(runs=[run])
        written += write_report(single, run.run_dir)
        report.notes += [n for n in single.notes if n not in report.notes]
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
        return 0
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no width to fit, keep rows whole
        console = Console(width=200)
    print_report(report, console)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0
