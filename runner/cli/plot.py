"""`anytime plot RUN [RUN ...]`: per dataset, Q(b) with 95% bands, running best and quality vs dollars."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runner.analysis.report import build_report
from runner.errors import ConfigError
from runner.ledger.reader import ledger_path
from runner.ui.plot import PLOT_FORMATS, PlotUnavailable, plot_datasets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s); several are drawn in the same figures")
    parser.add_argument("--format", choices=PLOT_FORMATS, default="png", help="png (300 dpi), svg or pdf (default png)")
    parser.add_argument("--out", metavar="DIR", help="folder for the figures (default: the first RUN)")


def main(args: argparse.Namespace) -> int:
    for run in args.runs:
        if not ledger_path(Path(run)).exists():
            raise ConfigError(f"{run}: no ledger.jsonl here; is this a run folder (ledgers/<run name>)?")
    folder = Path(args.out) if args.out else Path(args.runs[0])
    if not folder.is_dir():
        raise ConfigError(f"--out {folder}: no such folder")
    report = build_report(args.runs)
    try:
        written = plot_datasets(report, folder, args.format)
    except PlotUnavailable as exc:
        raise ConfigError(str(exc)) from None
    if not written:
        raise ConfigError(f"{', '.join(args.runs)}: no completed job to plot yet")
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
