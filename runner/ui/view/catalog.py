"""Which run folders the viewer shows, and the id each has in URLs.

Either the run folders named on the command line, or every folder holding a ``ledger.jsonl`` in
the ledger folder (looked at again on every request, so a run started after the viewer shows
up). An id is the folder's name, made unique with ``~2``, ``~3`` when two folders share a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.ledger.reader import LEDGER_FILE


class ViewError(Exception):
    """A request the viewer cannot answer: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def run_folder_problem(path: Path) -> str | None:
    """Why ``path`` is not a run folder, or None when it is one."""
    if not path.exists():
        return f"{path}: no such run folder"
    if not path.is_dir():
        return f"{path}: not a folder (a run folder holds {LEDGER_FILE})"
    if not (path / LEDGER_FILE).is_file():
        return f"{path}: not a run folder (no {LEDGER_FILE} in it)"
    return None


class RunCatalog:
    def __init__(self, ledgers: Path | None, runs: Sequence[Path] = ()) -> None:
        self.ledgers = ledgers
        self.runs = [Path(r) for r in runs]

    def folders(self) -> list[Path]:
        """The run folders shown, in order (named ones as given, else the ledger folder's, by name)."""
        if self.runs:
            return list(self.runs)
        if self.ledgers is None or not self.ledgers.is_dir():
            return []
        return sorted(p for p in self.ledgers.iterdir() if (p / LEDGER_FILE).is_file())

    def entries(self) -> dict[str, Path]:
        """id -> run folder."""
        out: dict[str, Path] = {}
        for folder in self.folders():
            name = folder.resolve().name or "run"
            run_id, n = name, 1
            while run_id in out:
                n += 1
                run_id = f"{name}~{n}"
            out[run_id] = folder
        return out

    def path_of(self, run_id: str) -> Path:
        """The folder of a run id.

        Raises:
            ViewError: 404 for an id the catalog does not show (the message lists those it does).
        """
        entries = self.entries()
        if run_id in entries:
            return entries[run_id]
        where = f"in {self.ledgers}" if not self.runs and self.ledgers is not None else "among the runs given"
        known = ", ".join(entries) or "none"
        raise ViewError(404, f"no run {run_id!r} {where} (known: {known})")

    def startup_problems(self) -> list[str]:
        """What is wrong with the command line's run folders, or the ledger folder, before serving."""
        if self.runs:
            return [p for p in (run_folder_problem(r) for r in self.runs) if p]
        if self.ledgers is None or not self.ledgers.is_dir():
            return [f"{self.ledgers}: no such ledger folder (give --ledgers DIR or run folders)"]
        if not self.folders():
            return [f"{self.ledgers}: no run folders yet (a run folder holds {LEDGER_FILE})"]
        return []
