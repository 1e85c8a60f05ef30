"""NaturalPlan meeting planning: simulate the plan's steps; solved when it meets as many friends as the gold.

The official rules (natural_plan/README.md in the shared data): keep what follows the first
"SOLUTION:", split on ".", and walk the steps from the start place and time. Travel takes the
distance matrix's minutes (not the minutes written); a meeting lasts the friend's minimum and
counts only at their place inside their window; the first step that fails ends the walk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from runner.errors import DatasetError
from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.files import read_jsonl, require, take

# a friend's (place, opens, closes, minimum minutes)
_Window = tuple[str, datetime, datetime, int]
_DAY_MINUTES = 24 * 60


class _StepFailed(Exception):
    pass


def _clock(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), "%I:%M%p")
    except ValueError:
        raise _StepFailed(f"not a time: {text!r}") from None


def split_steps(text: str) -> list[str]:
    """The plan's steps: after the first "SOLUTION:", split on "."."""
    marker = "SOLUTION:"
    if marker in text:
        text = text[text.find(marker) + len(marker) :]
    return [step.strip() for step in text.split(".") if step.strip()]


def count_meetings(steps: list[str], data: dict[str, Any]) -> int:
    """Friends met by walking ``steps`` until the first one that fails."""
    (place, start), *friends = data["constraints"]
    windows: dict[str, _Window] = {
        name: (where, _clock(span.split("to")[0]), _clock(span.split("to")[1]), int(minutes))
        for name, where, span, minutes in friends
    }
    now, met = _clock(start), set[str]()
    for step in steps:
        try:
            place, now = _step(step, place, now, windows, met, data["dist_matrix"])
        except (_StepFailed, KeyError, IndexError, ValueError):
            break
    return len(met)


def _step(
    step: str,
    place: str,
    now: datetime,
    windows: Mapping[str, _Window],
    met: set[str],
    dist: Mapping[str, Mapping[str, float]],
) -> tuple[str, datetime]:
    if step.startswith("You start"):
        return place, now
    if step.startswith("You travel"):
        destination = step.split("travel to ")[1].split(" in")[0].strip()
        return destination, now + timedelta(minutes=dist[place][destination])
    if step.startswith("You wait"):
        until = _clock(step.split("wait until ")[1].split(".")[0])
        if until <= now:
            raise _StepFailed("waiting backwards in time")
        return place, until
    if step.startswith("You meet"):
        person = step.split("meet ")[1].split(" for")[0].strip()
        where, opens, closes, minutes = windows[person]
        end = now + timedelta(minutes=minutes)
        if person in met or where != place or now < opens or end > closes:
            raise _StepFailed(f"cannot meet {person} here and now")
        met.add(person)
        return place, end
    raise _StepFailed("unknown plan format")


def check_record(row: Mapping[str, Any]) -> str | None:
    """What is wrong with a record's constraints, distances or plan (None: nothing), naming the field.

    Grading walks a model's plan against these; a record that passes cannot make grading fail.
    """
    constraints, dist, plan = row["constraints"], row["dist_matrix"], row["golden_plan"]
    start = constraints[0] if constraints else None
    if not (isinstance(start, list) and len(start) == 2 and all(isinstance(x, str) for x in start)):
        return "field 'constraints[0]': expected [start place, 'H:MMAM']"
    for i, friend in enumerate(constraints[1:], 1):
        if not _is_friend(friend):
            return f"field 'constraints[{i}]': expected [name, place, 'H:MMAM to H:MMPM', minutes]"
    for origin, row_of in dist.items():
        if not isinstance(row_of, dict) or not all(_is_minutes(v) for v in row_of.values()):
            return f"field 'dist_matrix.{origin}': expected {{place: minutes}} with minutes from 0 to {_DAY_MINUTES}"
    for i, step in enumerate(plan):
        if not isinstance(step, str):
            return f"field 'golden_plan[{i}]': expected a sentence, got {type(step).__name__}"
    return None


def _is_friend(friend: object) -> bool:
    if not (isinstance(friend, list) and len(friend) == 4):
        return False
    name, place, span, minutes = friend
    return (
        isinstance(name, str)
        and isinstance(place, str)
        and isinstance(span, str)
        and span.count("to") == 1
        and _is_minutes(minutes)
        and isinstance(minutes, int)
    )


def _is_minutes(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= _DAY_MINUTES
    )


class MeetingTask(Task):
    kind: ClassVar[str] = "meeting"
    answer_format: ClassVar[str] = (
        "'SOLUTION:' followed by the schedule as sentences: 'You start at PLACE at 9:00AM.', 'You travel to "
        "PLACE in M minutes and arrive at H:MMAM.', 'You wait until H:MMPM.', 'You meet NAME for M minutes "
        "from H:MMPM to H:MMPM.'"
    )
    answer_max_tokens: ClassVar[int] = 512

    def load(self, path: Path, limit: int | None = None) -> list[Problem]:
        problems: list[Problem] = []
        for line, row in read_jsonl(path):
            require(row, ("id", "prompt_0shot"), path, line)
            require(row, ("constraints", "golden_plan"), path, line, list)
            require(row, ("dist_matrix",), path, line, dict)
            problem = check_record(row)
            if problem:
                raise DatasetError(str(path), line, problem)
            data = {
                "constraints": row["constraints"],
                "dist_matrix": row["dist_matrix"],
                "golden_plan": row["golden_plan"],
            }
            try:
                gold_count = count_meetings([s.rstrip(".") for s in row["golden_plan"]], data)
            except (ValueError, TypeError, _StepFailed) as exc:
                raise DatasetError(str(path), line, f"field 'constraints' is malformed: {exc}") from None
            data["gold_count"] = gold_count
            problems.append(
                Problem(
                    id=str(row["id"]),
                    task=self.kind,
                    statement=row["prompt_0shot"].strip(),
                    gold=" ".join(row["golden_plan"]),
                    data=data,
                )
            )
        return take(problems, limit)

    def grade(self, output: str, rendered: Rendered) -> Grade:
        steps = split_steps(output)
        met = count_meetings(steps, rendered.problem.data)
        solved = bool(steps) and met == rendered.problem.data["gold_count"]
        return Grade(
            answer=f"{met} met: " + "; ".join(steps)[:400] if steps else "",
            score=1.0 if solved else 0.0,
        )
