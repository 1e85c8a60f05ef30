"""NaturalPlan calendar scheduling: exact match of the day and times, by the official rule.

The first ``Word, H:MM - H:MM`` in the answer is the proposal; a time reads as its hour plus 0.5
when the minutes are exactly "30" (so 14:15 reads as 14.0, a quirk of the official script kept
so that scores compare with published ones).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.files import read_jsonl, require, take

_SLOT = re.compile(r"[A-Za-z]+, [0-9]+:[0-9]+ - [0-9]+:[0-9]+")


def parse_slot(text: str) -> tuple[str, float, float]:
    """(day, start hour, end hour) of the first slot in ``text``; ("", -1, -1) when there is none."""
    found = _SLOT.search(text)
    if not found:
        return "", -1.0, -1.0
    day, hours = found.group().split(", ")
    start, end = hours.split(" - ")
    return day, _hours(start), _hours(end)


def _hours(clock: str) -> float:
    hour, minutes = clock.split(":")
    return float(hour) + (0.5 if minutes == "30" else 0.0)


class CalendarTask(Task):
    kind: ClassVar[str] = "calendar"
    answer_format: ClassVar[str] = (
        "one line 'Here is the proposed time: DAY, HH:MM - HH:MM' (e.g. Monday, 14:30 - 15:30)"
    )
    answer_max_tokens: ClassVar[int] = 256

    def load(self, path: Path, limit: int | None = None) -> list[Problem]:
        problems: list[Problem] = []
        for line, row in read_jsonl(path):
            require(row, ("id", "prompt_0shot", "golden_plan"), path, line)
            problems.append(
                Problem(
                    id=row["id"],
                    task=self.kind,
                    statement=row["prompt_0shot"].strip(),
                    gold=row["golden_plan"],
                    data={k: row[k] for k in ("num_people", "num_days", "duration") if k in row},
                )
            )
        return take(problems, limit)

    def grade(self, output: str, rendered: Rendered) -> Grade:
        day, start, end = parse_slot(output)
        answer = f"{day}, {start:g}-{end:g}" if day else ""
        solved = bool(day) and (day, start, end) == parse_slot(rendered.gold)
        return Grade(answer=answer, score=1.0 if solved else 0.0)
