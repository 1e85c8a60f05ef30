"""What the simulator knows: the problems of the dataset files it was given, nothing else.

Problems come from the task loaders in ``runner.tasks`` when they are installed, so the
simulator recognises exactly the ``statement`` that prompts contain; a tiny loader per task is
kept here as a fallback. A prompt is about the problem whose statement occurs *last* in it
(methods put in-context examples of other problems before the test problem).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.errors import DatasetError
from runner.tasks.base import Problem, Task

TASK_KINDS = ("aime", "gpqa", "trip", "meeting", "calendar")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(str(path), None, f"cannot read: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(str(path), number, f"not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise DatasetError(str(path), number, "expected a JSON object")
        rows.append(row)
    return rows


def _fallback_problem(kind: str, row: dict[str, Any], path: Path, number: int) -> Problem:
    try:
        if kind == "aime":
            return Problem(id=str(row["id"]), task=kind, statement=row["problem"], gold=str(int(row["answer"])))
        if kind == "gpqa":
            return Problem(
                id=str(row.get("Record ID", number)),
                task=kind,
                statement=row["Question"].strip(),
                gold=row["Correct Answer"].strip(),
                data=row,
            )
        gold = row["golden_plan"]
        gold_text = " ".join(gold) if isinstance(gold, list) else str(gold)
        return Problem(id=str(row["id"]), task=kind, statement=row["prompt_0shot"].strip(), gold=gold_text, data=row)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(str(path), number, f"not a {kind} record: {exc!r}") from None


def load_problems(kind: str, path: Path) -> list[Problem]:
    """Load a dataset file with the project's task loader, else with the simulator's own."""
    if kind not in TASK_KINDS:
        raise DatasetError(str(path), None, f"unknown dataset kind {kind!r} (known: {', '.join(TASK_KINDS)})")
    task = _project_task(kind)
    if task is not None:
        return list(task.load(Path(path)))
    return [_fallback_problem(kind, row, path, i) for i, row in enumerate(_read_jsonl(Path(path)), 1)]


def _project_task(kind: str) -> Task | None:
    """The project's task for ``kind``, or None when the simulator runs without its loaders."""
    try:
        from runner.tasks.registry import get_task
    except ImportError:
        return None
    try:
        return get_task(kind)
    except (ImportError, AttributeError, LookupError, ValueError):
        # a task the project's loaders do not provide (yet): the simulator's own loader reads it
        return None


class ProblemIndex:
    """Finds the problem a prompt is about, with a small cache keyed by the prompt text."""

    def __init__(self, problems: Sequence[Problem], cache_size: int = 4096) -> None:
        # longest first: a statement that contains another (shared boilerplate) must win a tie
        self._problems = sorted(problems, key=lambda p: -len(p.statement))
        self._cache: OrderedDict[str, Problem | None] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self._problems)

    def find(self, prompt: str) -> Problem | None:
        """The problem whose statement occurs rightmost in ``prompt`` (None if none does)."""
        if prompt in self._cache:
            self._cache.move_to_end(prompt)
            return self._cache[prompt]
        best: Problem | None = None
        best_end = -1
        for problem in self._problems:
            if not problem.statement:
                continue
            at = prompt.rfind(problem.statement)
            if at >= 0 and at + len(problem.statement) > best_end:
                best, best_end = problem, at + len(problem.statement)
        self._cache[prompt] = best
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return best


def open_index(datasets: Sequence[tuple[str, Path]]) -> ProblemIndex:
    """Load every (kind, path) pair into one index."""
    problems: list[Problem] = []
    for kind, path in datasets:
        problems.extend(load_problems(kind, Path(path)))
    return ProblemIndex(problems)
