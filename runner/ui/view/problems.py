"""A run's plan as its header recorded it: how many jobs it planned, and each problem's statement
and gold answer from the manifest's dataset files.

The run header holds the manifest as decoded; its dataset paths are relative to the manifest
file it names. When those files have moved or changed, the viewer says so and shows what the
ledger alone knows.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from runner.config.manifest import LoadedManifest, Manifest
from runner.config.plan import all_problems, count_jobs
from runner.errors import AnytimeError
from runner.ledger.records import RunHeader
from runner.tasks.base import Problem


def loaded_manifest(header: RunHeader) -> LoadedManifest | None:
    """The header's manifest, as if loaded from the file it was read from (None: it no longer decodes)."""
    try:
        manifest = msgspec.convert(header.manifest, Manifest)
    except (msgspec.ValidationError, ValueError):
        return None
    return LoadedManifest(manifest=manifest, path=Path(header.manifest_path), sha256=header.manifest_sha256)


def planned_jobs(header: RunHeader | None) -> int | None:
    """The jobs the run's manifest expands to (None when its dataset files cannot be read now)."""
    loaded = loaded_manifest(header) if header else None
    if loaded is None:
        return None
    try:
        return count_jobs(loaded)
    except (AnytimeError, OSError):
        return None


_PROBLEMS: dict[tuple[str, str, str], dict[str, Problem]] = {}


def _problems(loaded: LoadedManifest, dataset: str) -> dict[str, Problem]:
    key = (str(loaded.path), loaded.sha256, dataset)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = {p.id: p for p in all_problems(loaded, dataset)}
    return _PROBLEMS[key]


def find_problem(header: RunHeader | None, dataset: str, problem_id: str) -> tuple[Problem | None, str | None]:
    """(the problem, None), or (None, why it cannot be shown)."""
    loaded = loaded_manifest(header) if header else None
    if loaded is None or dataset not in loaded.manifest.datasets:
        return None, "the run header does not name this dataset"
    try:
        problem = _problems(loaded, dataset).get(problem_id)
    except (AnytimeError, OSError) as exc:
        return None, f"the dataset file cannot be read now: {exc}"
    if problem is None:
        return None, f"{loaded.resolve(loaded.manifest.datasets[dataset].path)} holds no problem {problem_id!r} now"
    return problem, None
