"""`anytime estimate MANIFEST`: calls, tokens, dollars and minimum wall time, before any call.

With ``--pilot N`` it first runs N problems of every (model, dataset, method) cell on the
manifest's providers (after the same checks and confirmation as `anytime run`: this spends), in
the run's own ledger folder, so the run that follows skips them; then it prices the rest from what
the pilot saw, with a 90% interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec
from rich.console import Console

from runner.cli.conventions import add_overrides, with_overrides
from runner.config.manifest import LoadedManifest, load_manifest
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
    parser.add_argument("--no-history", action="store_true", help="ignore earlier ledgers; use the stated prior")
    parser.add_argument(
        "--pilot",
        type=int,
        metavar="N",
        help="first run N problems per (model, dataset, method) on the real providers (this spends; they "
        "count as done for the run), then price the rest from them",
    )
    parser.add_argument("--yes", "-y", action="store_true", help="with --pilot: answer yes to the cost confirmation")
    parser.add_argument("--plain", action="store_true", help="with --pilot: plain progress lines even on a terminal")
    add_overrides(parser)


def main(args: argparse.Namespace) -> int:
    loaded = with_overrides(load_manifest(args.manifest), args)
    previous = [] if args.no_history else [Path(p) for p in args.previous] if args.previous else None
    console = Console()
    if args.pilot is not None:
        code = _pilot(loaded, args, Console(width=max(console.width, 150)))
        if code != 0:
            return code
    else:
        checked = preflight(loaded, keys=False)  # run's own checks; an estimate needs no keys
        for warning in checked.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    estimate = estimate_manifest(loaded, previous=previous)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(estimate).decode()))
    else:
        print_estimate(estimate, Console(width=max(console.width, 150)))
    return 0


def _pilot(loaded: LoadedManifest, args: argparse.Namespace, console: Console) -> int:
    """Run the pilot's jobs as part of the run, as `anytime run` would; its exit code (0: done)."""
    from runner.cli import run
    from runner.config.plan import pilot_jobs
    from runner.errors import ConfigError

    if args.pilot < 1:
        raise ConfigError(f"--pilot: expected a positive number of problems per cell, got {args.pilot}")
    only = pilot_jobs(loaded, args.pilot)
    console.print(f"Pilot: {len(only):,} jobs ({args.pilot} per model, dataset and method), run as part of the run")
    parser = argparse.ArgumentParser(prog="anytime run")
    run.add_arguments(parser)
    flags = [args.manifest, "--no-report"] + ["--yes"] * args.yes + ["--plain"] * args.plain
    run_args = parser.parse_args(flags)
    for name, value in vars(args).items():  # the overrides, validated by the run as its own flags
        if hasattr(run_args, name) and name not in ("manifest", "yes", "plain"):
            setattr(run_args, name, value)
    return run.main(run_args, only=only)
