"""A run folder's past: what an earlier process left in the ledger, and whether this manifest may
go on writing there."""

from __future__ import annotations

from pathlib import Path

import msgspec

from runner.config.manifest import LoadedManifest, Overrides, load_manifest
from runner.config.overrides import apply_overrides
from runner.config.plan import expand_jobs
from runner.errors import ConfigError
from runner.ledger.reader import LedgerState, ledger_path, load_state
from runner.ledger.records import RunHeader
from runner.ledger.recovery import state_after_recovery


def previous_state(run_dir: Path) -> LedgerState | None:
    """The ledger's summary with what recovery will add (the last crash's in-flight spend), or
    None for a fresh run folder."""
    return state_after_recovery(run_dir)


def recorded_overrides(header: RunHeader) -> Overrides:
    """The command-line overrides a run header recorded."""
    return msgspec.convert(header.overrides or {}, Overrides)


def check_manifest_change(loaded: LoadedManifest, state: LedgerState, run_dir: Path) -> None:
    """Refuse to mix a changed manifest into a ledger whose finished jobs it would orphan.

    Overrides that only narrow the sweep (``--limit``, ``--model``, ``--method``, ``--samples``)
    orphan nothing: the jobs they leave out stay in the ledger for the full run to skip.
    """
    if not state.headers or not state.completed_jobs:
        return
    last = state.headers[-1]
    if last.manifest_sha256 == loaded.sha256 and recorded_overrides(last) == loaded.overrides:
        return
    planned = {job.job_id for job in expand_jobs(_widened(loaded))}
    orphaned = [j for j in state.completed_jobs if j not in planned]
    if orphaned:
        raise ConfigError(
            f"{loaded.path.name} changed since {run_dir} was started: {len(orphaned)} finished job(s) in its "
            "ledger are not part of the manifest any more (models, problems, budgets, methods or parameters "
            "changed). Restore the manifest to resume, or pass --new-run to start a separate run folder."
        )


def _widened(loaded: LoadedManifest) -> LoadedManifest:
    """The manifest with only the overrides that change what a job is (``--budgets``)."""
    if loaded.overrides.is_empty():
        return loaded
    return apply_overrides(load_manifest(loaded.path), Overrides(budgets=loaded.overrides.budgets))


def manifest_of_run(run_dir: Path) -> LoadedManifest:
    """The manifest a run folder was written with (for ``anytime run --resume RUN``), with the
    command-line overrides it was run with.

    Raises:
        ConfigError: no ledger, no header, or the manifest file changed since.
    """
    if not ledger_path(run_dir).exists():
        raise ConfigError(f"{run_dir}: no ledger.jsonl here; is this a run folder (ledgers/<run name>)?")
    state = load_state(run_dir)
    if not state.headers:
        raise ConfigError(f"{run_dir}/ledger.jsonl has no run header")
    header = state.headers[-1]
    loaded = load_manifest(header.manifest_path)
    if loaded.sha256 != header.manifest_sha256:
        raise ConfigError(
            f"{header.manifest_path} changed since {run_dir} was written; run it directly with "
            "`anytime run MANIFEST` (unfinished jobs are redone, a change to finished ones is refused)"
        )
    return apply_overrides(loaded, recorded_overrides(header))
