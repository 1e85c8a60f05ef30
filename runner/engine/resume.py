"""A run folder's past: what an earlier process left in the ledger, and whether this manifest may
go on writing there."""

from __future__ import annotations

from pathlib import Path

from runner.config.manifest import LoadedManifest, load_manifest
from runner.config.plan import expand_jobs
from runner.errors import ConfigError
from runner.ledger.reader import LedgerState, ledger_path, load_state
from runner.ledger.recovery import state_after_recovery


def previous_state(run_dir: Path) -> LedgerState | None:
    """The ledger's summary with what recovery will add (the last crash's in-flight spend), or
    None for a fresh run folder."""
    return state_after_recovery(run_dir)


def check_manifest_change(loaded: LoadedManifest, state: LedgerState, run_dir: Path) -> None:
    """Refuse to mix a changed manifest into a ledger whose finished jobs it would orphan."""
    if not state.headers or state.headers[-1].manifest_sha256 == loaded.sha256 or not state.completed_jobs:
        return
    planned = {job.job_id for job in expand_jobs(loaded)}
    orphaned = [j for j in state.completed_jobs if j not in planned]
    if orphaned:
        raise ConfigError(
            f"{loaded.path.name} changed since {run_dir} was started: {len(orphaned)} finished job(s) in its "
            "ledger are not part of the manifest any more (models, problems, budgets, methods or parameters "
            "changed). Restore the manifest to resume, or pass --new-run to start a separate run folder."
        )


def manifest_of_run(run_dir: Path) -> LoadedManifest:
    """The manifest a run folder was written with (for ``anytime run --resume RUN``).

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
    return loaded
