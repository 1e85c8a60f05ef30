"""`anytime run MANIFEST`: estimate, confirm, sweep with a live display, then report."""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
from rich.console import Console

from runner.config.manifest import LoadedManifest, load_manifest
from runner.engine.collector import tuned_collector
from runner.engine.resume import manifest_of_run
from runner.engine.sweep import SweepOutcome
from runner.errors import ConfigError
from runner.ledger.estimate import Estimate
from runner.ui import format as fmt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", help="sweep manifest (TOML); rerunning it resumes its run")
    parser.add_argument("--yes", "-y", action="store_true", help="answer yes to the cost confirmation (scripts, CI)")
    parser.add_argument("--resume", metavar="RUN", help="resume the run in this ledger folder (uses its manifest)")
    parser.add_argument("--new-run", action="store_true", help="start a fresh run folder instead of resuming")
    parser.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="S",
        help="on Ctrl-C / SIGTERM, let in-flight calls finish for up to S seconds (default 30)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not print the report at the end")


def main(args: argparse.Namespace) -> int:
    from runner.engine.preflight import preflight
    from runner.engine.sweep import Sweep, SweepOptions
    from runner.ledger.estimate import estimate_manifest
    from runner.ui.dashboard import Display, SnapshotSource, open_display
    from runner.ui.estimate import print_estimate_summary

    # a pipe or CI log gets wide tables instead of 80 truncated columns
    console = Console() if sys.stdout.isatty() else Console(width=160)
    loaded = _manifest(args)
    # the checks `validate` makes, before anything else (a fresh --new-run folder has no past)
    checked = preflight(loaded, run_dir=None if args.new_run else loaded.run_dir())
    estimate = estimate_manifest(loaded)
    options = SweepOptions(grace_s=args.grace, new_run=args.new_run, usd_estimate=estimate.usd_expected)
    sweep = Sweep(loaded, options, checked)
    for warning in checked.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    print_estimate_summary(estimate, console)
    if not _confirmed(args, estimate, loaded, console):
        console.print("Nothing was spent.")
        return 1

    def display(get_snapshot: SnapshotSource) -> AbstractAsyncContextManager[Display]:
        return open_display(console, get_snapshot, plain=True if args.plain else None)

    with tuned_collector():
        outcome = anyio.run(sweep.run, display, backend="asyncio", backend_options=_backend_options())
    console.print(
        f"run {outcome.run_dir}: {outcome.jobs_run} jobs run, {outcome.jobs_skipped} resumed from the ledger, "
        f"{outcome.jobs_failed} failed; spent {fmt.usd(outcome.usd_this_process)} now, "
        f"{fmt.usd(outcome.usd_total)} in total"
    )
    if not args.no_report:
        from runner.analysis.report import build_report
        from runner.ui.report_files import print_report, write_report

        report = build_report([outcome.run_dir])
        write_report(report, outcome.run_dir)
        print_report(report, console)
    resume_hint = f"anytime run {args.manifest}" if args.manifest else f"anytime run --resume {outcome.run_dir}"
    return _exit_code(outcome, resume_hint, console)


def _manifest(args: argparse.Namespace) -> LoadedManifest:
    if args.resume:
        return manifest_of_run(Path(args.resume))
    if args.manifest:
        return load_manifest(args.manifest)
    raise ConfigError("give a manifest (anytime run manifests/demo.toml) or --resume RUN")


def _confirmed(args: argparse.Namespace, estimate: Estimate, loaded: LoadedManifest, console: Console) -> bool:
    """Whether the run may start: under the confirmation threshold, ``--yes``, or a yes at the prompt."""
    from runner.ledger.estimate import confirm_needed

    if not confirm_needed(estimate, loaded.manifest) or args.yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(
            f"estimated cost up to {fmt.usd(estimate.usd_high)} is above run.confirm_above_usd "
            f"({fmt.usd(loaded.manifest.run.confirm_above_usd)}); pass --yes to run without asking"
        )
    return console.input("Run it? [y/N] ").strip().lower() in ("y", "yes")


def _exit_code(outcome: SweepOutcome, resume_hint: str, console: Console) -> int:
    """2 a lane's configuration is wrong, 130 interrupted, 3 the spend cap, 1 jobs failed, 0 done."""
    if outcome.lanes_stopped:
        for message in outcome.lanes_stopped.values():
            print(f"error: {message}", file=sys.stderr)
        left = outcome.jobs_total - outcome.jobs_run - outcome.jobs_skipped
        console.print(f"{left} job(s) not run; fix the configuration and rerun: {resume_hint}")
        return 2
    if outcome.stopped:
        console.print(f"[yellow]stopped:[/] {outcome.stopped}")
        console.print(f"Resume with: {resume_hint}")
        return 130 if outcome.stopped.startswith("interrupted") else 3
    if outcome.jobs_failed:
        console.print(
            f"[red]{outcome.jobs_failed} job(s) failed after all retries;[/] rerun to retry them: {resume_hint}"
        )
        return 1
    return 0


def _backend_options() -> dict[str, bool]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
