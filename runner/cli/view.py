"""`anytime view [RUN ...]`: the runs of a ledger folder in the browser, served on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from runner.errors import ConfigError
from runner.ui.view.catalog import RunCatalog
from runner.ui.view.server import serve_forever


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run folders to show (default: every run in --ledgers)")
    parser.add_argument("--ledgers", default="ledgers", metavar="DIR", help="the ledger folder (default: ledgers)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL only; do not open a browser")


def _say(line: str) -> None:
    print(line, flush=True)


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"anytime view: --port must be in 0..65535, got {args.port}")
    catalog = RunCatalog(Path(args.ledgers), [Path(r) for r in args.runs])
    problems = catalog.startup_problems()
    nothing_to_show = len(problems) == len(args.runs) if args.runs else not Path(args.ledgers).is_dir()
    if nothing_to_show:
        raise ConfigError("; ".join(problems))
    for problem in problems:
        _warn(f"warning: {problem}")
    try:
        asyncio.run(serve_forever(catalog, args.port, not args.no_browser, _say, _warn))
    except KeyboardInterrupt:
        _warn("viewer stopped")
    return 0
