"""`anytime run MANIFEST`: estimate, confirm, sweep with a live display, then report.

The display starts before anything slow (imports included: the engine is imported after it), so
a terminal shows the run within a second of the command; the estimate and the plan are made
while it says so.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from runner.cli.conventions import ExitCode, add_overrides, add_yes, confirm, with_overrides
from runner.errors import ConfigError
from runner.ui import format as fmt
from runner.ui.display import Display, Mode, make_display, open_display, shown

if TYPE_CHECKING:  # imported where used, after the display has drawn its first frame
    from runner.config.manifest import LoadedManifest
    from runner.engine.eta import Plan
    from runner.engine.snapshots import RunSnapshot
    from runner.engine.sweep import Driver, SweepOptions, SweepOutcome
    from runner.ledger.estimate import Estimate
    from runner.ui.dashboard import SnapshotSource


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", help="sweep manifest (TOML); rerunning it resumes its run")
    add_yes(parser, "the cost confirmation")
    parser.add_argument("--resume", metavar="RUN", help="resume the run in this ledger folder (uses its manifest)")
    parser.add_argument("--new-run", action="store_true", help="start a fresh run folder instead of resuming")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="S",
        help="on Ctrl-C / SIGTERM, let in-flight calls finish for up to S seconds (default 30)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not print the report at the end")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run the jobs in N worker processes sharing the run's limits, spend cap and ledger "
        "(default: run.workers, else one per core when the lanes may hold 1,000+ streams at once, else 1)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="run the workers as Ray actors on the cluster at ADDRESS (default: auto, the running "
        "cluster or a local one); needs pip install 'anytime-runner[ray]'",
    )
    parser.add_argument(
        "--no-transcripts",
        action="store_true",
        help="do not keep what each call sent and streamed (overrides run.transcripts = true)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    output.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors (the exit code tells)")
    output.add_argument(
        "--json-progress",
        action="store_true",
        help="progress as one JSON object a line on stdout (other output goes to stderr)",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        metavar="S",
        help="seconds between progress updates (default: 0.25 on the dashboard, 5 plain, 1 JSON)",
    )
    add_overrides(parser)


def _mode(args: argparse.Namespace) -> Mode:
    if args.quiet:
        return "quiet"
    if args.json_progress:
        return "json"
    return "plain" if args.plain else "auto"


def _console(mode: Mode) -> Console:
    if mode == "json":  # stdout carries JSON only
        return Console(stderr=True, soft_wrap=not sys.stderr.isatty())
    # a pipe or CI log gets wide tables instead of 80 truncated columns, and a line stays one line
    # (a long run folder must not split "spent $X now, $Y in total" for grep and scripts)
    return Console() if sys.stdout.isatty() else Console(width=160, soft_wrap=True)


def main(args: argparse.Namespace, only: frozenset[str] | None = None) -> int:
    """`anytime run`; with ``only``, just those jobs of the run (a pilot: `anytime estimate --pilot`)."""
    mode = _mode(args)
    console = _console(mode)
    title = Path(args.resume).name if args.resume else Path(args.manifest or "run").stem
    display = make_display(console, title, mode)
    if args.progress_every is not None:
        if not args.progress_every > 0:
            raise ConfigError(f"--progress-every: must be a positive number of seconds, got {args.progress_every}")
        display.interval = max(args.progress_every, 0.05)
    with shown(display):
        outcome = _run(args, display, console, only)
        if outcome is None:
            return ExitCode.INTERRUPTED
    return _finish(args, outcome, console, mode)


def _run(
    args: argparse.Namespace, display: Display, console: Console, only: frozenset[str] | None
) -> SweepOutcome | None:
    """Everything up to the end of the sweep, under the display; None when the user says no."""
    display.phase("reading the manifest")
    loaded = _manifest(args)
    driver = _driver(args, loaded)
    display.phase("checking the manifest")
    from runner.engine.preflight import preflight

    # the checks `validate` makes, before anything else (a fresh --new-run folder has no past)
    checked = preflight(loaded, run_dir=None if args.new_run else loaded.run_dir())
    display.phase("estimating the cost")
    from runner.ledger.estimate import estimate_manifest

    estimate = estimate_manifest(loaded, only=only)
    display.phase("planning the jobs")
    import anyio

    from runner.engine.sweep import Sweep, SweepOptions

    options = SweepOptions(
        grace_s=args.grace,
        new_run=args.new_run,
        usd_estimate=estimate.usd_expected,
        plans=lane_plans(estimate),
        only=only,
        transcripts=False if args.no_transcripts else None,
        driver=driver,
    )
    sweep = Sweep(loaded, options, checked)
    for warning in checked.warnings:
        display.print(f"[yellow]warning:[/] {warning}")
    _show_estimate(estimate, display)
    if not _confirmed(args, estimate, loaded, display, console):
        display.print("Nothing was spent.")
        return None

    def attach(get_snapshot: SnapshotSource) -> AbstractAsyncContextManager[Display]:
        return open_display(display, get_snapshot)

    if args.ray is not None:
        return _sweep_on_ray(args, loaded, options, display)
    from runner.engine.collector import tuned_collector

    with tuned_collector():  # thousands of streams open: see runner.engine.collector
        return anyio.run(sweep.run, attach, backend="asyncio", backend_options=_backend_options())


def _sweep_on_ray(
    args: argparse.Namespace, loaded: LoadedManifest, options: SweepOptions, display: Display
) -> SweepOutcome:
    """The sweep with its coordinator and workers as Ray actors, shown here from their snapshots."""
    from runner.cluster.ray_backend import run_on_ray

    display.phase(f"starting on Ray ({args.ray})")
    shown_last: list[RunSnapshot] = []

    def watch(snapshot: RunSnapshot) -> None:  # the run actor's snapshots, shown as this process's
        if not shown_last:
            display.attach(lambda: shown_last[-1])
        shown_last[:] = [snapshot]
        display.refresh()

    workers = args.workers or loaded.manifest.run.workers
    return run_on_ray(args.ray, loaded, options, workers, watch, every_s=display.interval)


def _driver(args: argparse.Namespace, loaded: LoadedManifest) -> Driver | None:
    """Who runs the jobs: worker processes, or this process (None). With ``--ray`` the run goes
    to the cluster instead (`_sweep_on_ray`); this only checks that Ray is there."""
    from runner.cluster.sizing import run_workers

    workers = run_workers(loaded, args.workers)
    if args.ray is not None:
        from runner.cluster.ray_backend import require_ray

        if loaded.manifest.run.mode == "batch":
            raise ConfigError('--ray: batch mode (run.mode = "batch") runs in one process')

        require_ray()
        return None
    if workers == 1:
        return None
    from runner.cluster.processes import process_driver

    return process_driver(workers)


def lane_plans(estimate: Estimate) -> dict[tuple[str, str], Plan]:
    """The estimate's expected work per (lane, model), which the ETA starts from."""
    from runner.engine.eta import Plan

    plans: dict[tuple[str, str], Plan] = {}
    for row in estimate.rows:
        key = (row.provider, row.model)
        before = plans.get(key, Plan(jobs=0, calls=0.0, input_tokens=0.0, output_tokens=0.0))
        plans[key] = Plan(
            jobs=before.jobs + row.jobs,
            calls=before.calls + row.calls.expected,
            input_tokens=before.input_tokens + row.input_tokens.expected,
            output_tokens=before.output_tokens + row.output_tokens.expected,
            streams=row.fidelity in ("raw", "content"),
        )
    return plans


def _show_estimate(estimate: Estimate, display: Display) -> None:
    from runner.ui.estimate import estimate_summary
    from runner.ui.progress_log import JsonLines

    if isinstance(display, JsonLines):
        display.emit("estimate", estimate)
    else:
        display.print(estimate_summary(estimate))


def _finish(args: argparse.Namespace, outcome: SweepOutcome, console: Console, mode: Mode) -> int:
    """Print the outcome and the report (files are written whatever the mode); the exit code."""
    quiet = mode == "quiet"
    if not quiet:
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
        if not quiet:
            print_report(report, console)
    resume_hint = f"anytime run {args.manifest}" if args.manifest else f"anytime run --resume {outcome.run_dir}"
    code = _exit_code(outcome, resume_hint, console, quiet)
    if mode == "json":
        from runner.ui.progress_log import JsonLines

        JsonLines().emit("done", {"exit_code": int(code), **_outcome_fields(outcome)})
    return code


def _outcome_fields(outcome: SweepOutcome) -> dict[str, object]:
    return {
        "run_dir": str(outcome.run_dir),
        "jobs_total": outcome.jobs_total,
        "jobs_run": outcome.jobs_run,
        "jobs_skipped": outcome.jobs_skipped,
        "jobs_failed": outcome.jobs_failed,
        "usd_this_process": outcome.usd_this_process,
        "usd_total": outcome.usd_total,
        "stopped": outcome.stopped,
    }


def _manifest(args: argparse.Namespace) -> LoadedManifest:
    from runner.config.manifest import Overrides, load_manifest

    if args.resume:
        from runner.engine.resume import manifest_of_run

        recorded = manifest_of_run(Path(args.resume))
        return with_overrides(recorded, args, recorded.overrides)
    if args.manifest:
        return with_overrides(load_manifest(args.manifest), args, Overrides())
    raise ConfigError("give a manifest (anytime run manifests/demo.toml) or --resume RUN")


def _confirmed(
    args: argparse.Namespace, estimate: Estimate, loaded: LoadedManifest, display: Display, console: Console
) -> bool:
    """Whether the run may start: under the confirmation threshold, ``--yes``, or a yes at the prompt."""
    from runner.ledger.estimate import confirm_needed

    if args.yes or not confirm_needed(estimate, loaded.manifest):
        return True
    why = (
        f"estimated cost up to {fmt.usd(estimate.usd_high)} is above run.confirm_above_usd "
        f"({fmt.usd(loaded.manifest.run.confirm_above_usd)})"
    )
    with display.paused():
        return confirm(f"{why[0].upper()}{why[1:]}. Run it?", assume_yes=args.yes, console=console, why=why)


def _exit_code(outcome: SweepOutcome, resume_hint: str, console: Console, quiet: bool) -> ExitCode:
    """2 a lane's configuration is wrong, 130 interrupted, 3 the spend cap, 1 jobs failed, 0 done."""

    def say(text: str) -> None:
        if not quiet:
            console.print(text)

    if outcome.lanes_stopped:
        for message in outcome.lanes_stopped.values():
            print(f"error: {message}", file=sys.stderr)
        left = outcome.jobs_total - outcome.jobs_run - outcome.jobs_skipped
        say(f"{left} job(s) not run; fix the configuration and rerun: {resume_hint}")
        return ExitCode.BAD_INPUT
    if outcome.stopped:
        say(f"[yellow]stopped:[/] {outcome.stopped}")
        say(f"Resume with: {resume_hint}")
        return ExitCode.INTERRUPTED if outcome.stopped.startswith("interrupted") else ExitCode.SPEND_CAP
    if outcome.jobs_failed:
        say(f"[red]{outcome.jobs_failed} job(s) failed after all retries;[/] rerun to retry them: {resume_hint}")
        return ExitCode.FAILED
    return ExitCode.DONE


def _backend_options() -> dict[str, bool]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
