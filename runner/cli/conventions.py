"""What every subcommand shares: one table of exit codes, the ``[y/N]`` prompt, examples in
``--help``, the manifest overrides (``--limit``, ``--model``, ...) and run-folder arguments.

A subcommand module uses these instead of its own versions, so the same kind of outcome reads
and exits the same way whichever command met it.
"""

from __future__ import annotations

import argparse
import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import AnytimeError, ConfigError, SpendCapReached

if TYPE_CHECKING:  # the manifest (msgspec) loads where it is read: `anytime run` draws first
    from rich.console import Console

    from runner.config.manifest import LoadedManifest, Overrides


class ExitCode(IntEnum):
    """The exit codes of every subcommand (`EXIT_CODES` says what each means)."""

    DONE = 0
    FAILED = 1
    BAD_INPUT = 2
    SPEND_CAP = 3
    INTERRUPTED = 130


# code, name, what it means for each command it can come from (README and `anytime --help` show it)
EXIT_CODES: tuple[tuple[ExitCode, str, str], ...] = (
    (ExitCode.DONE, "done", "the command did all it was asked; `run`: every job finished"),
    (
        ExitCode.FAILED,
        "some jobs failed",
        "`run`: jobs failed after all retries (rerun to retry them); `ledger verify`: the audit found a "
        "problem; `doctor --live`: a provider's check failed",
    ),
    (
        ExitCode.BAD_INPUT,
        "bad input",
        "a manifest field, flag, dataset line, key variable, price or run folder is wrong: one line names "
        "it, and nothing was spent",
    ),
    (ExitCode.SPEND_CAP, "stopped by the spend cap", "`run`: `run.max_usd` or a provider's `max_usd` stopped new work"),
    (ExitCode.INTERRUPTED, "interrupted", "Ctrl-C or SIGTERM, or no at a `[y/N]` prompt; `run`: rerun to resume"),
)


def exit_code_of(exc: BaseException) -> ExitCode | None:
    """The exit code of an error that ends a command (None: not ours, let it propagate)."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, ConfigError):
        return ExitCode.BAD_INPUT
    if isinstance(exc, SpendCapReached):
        return ExitCode.SPEND_CAP
    if isinstance(exc, AnytimeError):
        return ExitCode.FAILED
    return None


def exit_codes_help() -> str:
    """The exit-code table as ``--help`` prints it."""
    return "exit codes:\n" + "\n".join(f"  {code.value:<4} {name}" for code, name, _ in EXIT_CODES)


def epilog(examples: str) -> str:
    """A subcommand's ``--help`` epilog: its examples (one per line, two spaces in), then the codes."""
    codes = ", ".join(f"{code.value} {name}" for code, name, _ in EXIT_CODES)
    return f"examples:\n  {examples}\n\nexit codes: {codes}"


def add_subcommand(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, examples: str
) -> argparse.ArgumentParser:
    """A subcommand with its summary and examples in ``--help`` (e.g. ``anytime ledger verify``)."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=epilog(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# --- the [y/N] prompt -------------------------------------------------------------------------------


def confirm(question: str, *, assume_yes: bool, console: Console, why: str = "") -> bool:
    """Ask ``question [y/N]`` (no is the default); ``--yes`` answers yes.

    Raises:
        ConfigError: no terminal to ask on and no ``--yes``: says why it asks and how to skip it.
    """
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(f"{why or question}; pass --yes to go ahead without asking")
    from rich.text import Text

    answer = console.input(Text(f"{question} [y/N] "))  # plain: no markup, no highlighting
    return answer.strip().lower() in ("y", "yes")


def add_yes(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--yes", "-y", action="store_true", help=f"answer yes to {what} (scripts, CI)")


# --- manifest overrides -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """The flags that override manifest fields without editing the file (validated as those fields)."""
    group = parser.add_argument_group("overrides (each validated as the manifest field it sets)")
    group.add_argument("--limit", metavar="N", help="evaluate the first N problems of each dataset (datasets.*.limit)")
    group.add_argument(
        "--model", action="append", metavar="KEY", help="only this model (repeatable or a,b; sweep.models)"
    )
    group.add_argument(
        "--method", action="append", metavar="KEY", help="only this method (repeatable or a,b; sweep.methods)"
    )
    group.add_argument("--budgets", metavar="B1,B2,...", help="these token budgets (sweep.budgets, over datasets')")
    group.add_argument("--samples", metavar="N", help="samples per problem (sweep.samples)")
    group.add_argument("--max-usd", metavar="USD", help="the run's spend cap in dollars (run.max_usd)")
    reuse = group.add_mutually_exclusive_group()
    reuse.add_argument(
        "--reuse",
        action="append",
        metavar="RUN",
        help="reuse the traces and answers of this earlier run folder where they are the same (repeatable; run.reuse)",
    )
    reuse.add_argument(
        "--no-reuse",
        action="store_true",
        help="reuse no call already paid for, not even this run's own: pay for every call again (run.reuse_calls)",
    )
    group.add_argument(
        "--batch",
        action="store_true",
        help="through each provider's batch interface, at batch prices, up to 24 h a batch (run.mode = 'batch')",
    )


def overrides_of(args: argparse.Namespace, source: str) -> Overrides:
    """The overrides given on the command line, typed (a wrong type names the field and flag)."""
    from runner.config.overrides import overrides_from_flags, parse_scalar

    def many(values: list[str] | None) -> list[str] | None:
        return None if values is None else [word for value in values for word in _words(value)]

    def one(value: str | None) -> object:
        return None if value is None else parse_scalar(value)

    raw: dict[str, object] = {
        "limit": one(args.limit),
        "models": many(args.model),
        "methods": many(args.method),
        "budgets": None if args.budgets is None else [parse_scalar(b) for b in _words(args.budgets)],
        "samples": one(args.samples),
        "max_usd": one(args.max_usd),
        # folders named here, from where the command runs (the manifest's own entries are under its ledger_dir)
        "reuse": None if args.reuse is None else [str(Path(p).expanduser().resolve()) for p in args.reuse],
        "reuse_calls": False if args.no_reuse else None,
        "mode": "batch" if getattr(args, "batch", False) else None,
    }
    return overrides_from_flags(raw, source)


def with_overrides(
    loaded: LoadedManifest, args: argparse.Namespace, recorded: Overrides | None = None
) -> LoadedManifest:
    """``loaded`` with the overrides a run recorded (on resume), then the flags given now."""
    from runner.config.manifest import Overrides
    from runner.config.overrides import apply_overrides, merged

    given = overrides_of(args, loaded.path.name)
    return apply_overrides(loaded, merged(recorded or Overrides(), given))


# --- run folders --------------------------------------------------------------------------------------


def run_folder(path: str | Path) -> Path:
    """A run folder named on the command line.

    Raises:
        ConfigError: there is no ledger there (bad input: exit 2).
    """
    from runner.ledger.reader import ledger_path

    folder = Path(path)
    if not ledger_path(folder).exists():
        raise ConfigError(f"{folder}: no ledger.jsonl here; is this a run folder (ledgers/<run name>)?")
    return folder


__all__ = [
    "EXIT_CODES",
    "ExitCode",
    "add_overrides",
    "add_subcommand",
    "add_yes",
    "confirm",
    "epilog",
    "exit_code_of",
    "overrides_of",
    "run_folder",
    "with_overrides",
]
