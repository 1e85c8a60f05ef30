"""`anytime estimate MANIFEST`: calls, tokens, dollars and minimum wall time, before any call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec
from rich.console import Console

from runner.config.manifest import load_manifest
from runner.engine.preflight import preflight
from runner.ledger.estimate import estimate_manifest
from runner.ui.estimate import print_estimate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="sweep manifest (TOML)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON (for scripts)")
    parser.add_argument(
        "--from",
        dest="previous",
        action="append",
        metavar="RUN",
        default=None,
        help="calibrate 'expected' on this earlier run folder (repeatable; default: the run "
        "folders under the manifest's ledger folder)",
    )
    parser.add_argument("--no-history", action="store_true", help="ignore earlier ledgers; use the stated defaults")


def main(args: argparse.Namespace) -> int:
    loaded = load_manifest(args.manifest)
    checked = preflight(loaded, keys=False)  # run's own checks; an estimate needs no keys
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    previous = [] if args.no_history else [Path(p) for p in args.previous] if args.previous else None
    estimate = estimate_manifest(loaded, previous=previous)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(estimate).decode()))
    else:
        console = Console()
        print_estimate(estimate, Console(width=max(console.width, 150)))
    return 0
