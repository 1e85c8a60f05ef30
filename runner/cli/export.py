"""`anytime export RUN --format csv|jsonl|sqlite|parquet`: one typed row per (job, budget), for pandas, DuckDB and R."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runner.analysis.export import export_rows
from runner.errors import ConfigError
from runner.ledger.reader import ledger_path
from runner.ui.export import FORMATS, write_export

EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "sqlite": "sqlite", "parquet": "parquet"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (ledgers/<run name>)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="file format (default csv)")
    parser.add_argument("--out", metavar="PATH", help="where to write (default RUN/export.<format>)")


def main(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not ledger_path(run_dir).exists():
        raise ConfigError(f"{run_dir}: no ledger.jsonl here; is this a run folder (ledgers/<run name>)?")
    out = Path(args.out) if args.out else run_dir / f"export.{EXTENSIONS[args.format]}"
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: no such folder {out.parent}")
    count = write_export(export_rows(run_dir), args.format, out)
    print(f"wrote {count} rows (one per job and budget) to {out}", file=sys.stderr)
    return 0
