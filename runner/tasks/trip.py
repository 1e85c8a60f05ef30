"""NaturalPlan trip planning: the official parse, exact match, and the partial-credit CSR.

The parse follows the official ``evaluate_trip_planning.py`` rules (natural_plan/README.md in
the shared data, quirks kept): a header "European cities for N days" sets the trip length; the
first ``d-d`` range of a line is recorded and a range ending on the trip length ends the plan; a
line "...Day D ... from X to Y" is a flight. Cities are the first flight's origin and every
flight's destination; a stay runs from one flight day to the next, both counted.

Scores (paper.md §8): ``score`` is the constraint satisfaction rate, matched prefix stays over
gold stays (the ratio the official code computes before rounding down); ``exact`` is the
official 0/1 exact match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from runner.errors import DatasetError
from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.files import read_jsonl, require, take

Stay = tuple[str, int]

_TRIP_LENGTH = re.compile(r"European cities for (\d+) days")
_RANGE = re.compile(r"\d+-\d+")
_FLIGHT = re.compile(r".*Day (\d+).*from (\w+) to (\w+)")


def parse_plan(text: str) -> list[Stay]:
    """The (city, days) stays of a plan, by the official rules ([] when it has no range or no flight)."""
    trip_length: int | None = None
    ranges: list[str] = []
    flights: list[tuple[str, str, str]] = []
    for line in text.split("\n"):
        header = _TRIP_LENGTH.findall(line)
        if header:
            trip_length = int(header[0])
        found = _RANGE.findall(line)
        if found:
            ranges.append(found[0])
            if int(found[0].split("-")[1]) == trip_length:
                break  # the end of the plan: an alternative plan further down is ignored
        flight = _FLIGHT.findall(line)
        if flight:
            flights.append(flight[0])
    if not ranges or not flights:
        return []
    cities = [flights[0][1]] + [to for _, _, to in flights]
    boundaries = [1] + [int(day) for day, _, _ in flights] + [int(ranges[-1].split("-")[1])]
    return [(city, boundaries[i + 1] - boundaries[i] + 1) for i, city in enumerate(cities)]


def matched_prefix(gold: list[Stay], plan: list[Stay]) -> int:
    """How many leading gold stays the plan has, city and length both right."""
    count = 0
    for want, got in zip(gold, plan, strict=False):
        if want != got:
            break
        count += 1
    return count


def gold_stays(problem: Problem) -> list[Stay]:
    cities = [c for c in str(problem.data["cities"]).split("**") if c]
    days = [int(d) for d in str(problem.data["durations"]).split("**") if d]
    return list(zip(cities, days, strict=True))


class TripTask(Task):
    kind: ClassVar[str] = "trip"
    answer_format: ClassVar[str] = (
        "the complete plan, starting 'Here is the trip plan for visiting the N European cities "
        "for D days:', then one line per stay '**Day X-Y:** Visit CITY for K days.' (the first one "
        "'**Day 1-Y:** Arriving in CITY and visit CITY for K days.') with a line "
        "'**Day Y:** Fly from CITY to NEXT.' between stays"
    )
    answer_max_tokens: ClassVar[int] = 768

    def load(self, path: Path, limit: int | None = None) -> list[Problem]:
        problems: list[Problem] = []
        for line, row in read_jsonl(path):
            require(row, ("id", "prompt_0shot", "golden_plan", "cities", "durations"), path, line)
            problem = Problem(
                id=row["id"],
                task=self.kind,
                statement=row["prompt_0shot"].strip(),
                gold=row["golden_plan"],
                data={k: row[k] for k in ("cities", "durations", "num_cities") if k in row},
            )
            try:
                stays = gold_stays(problem)
            except ValueError:
                raise DatasetError(
                    str(path),
                    line,
                    "'cities' and 'durations' must list as many items, days as integers",
                ) from None
            if not stays:
                raise DatasetError(str(path), line, "field 'cities' holds no city")
            problems.append(problem)
        return take(problems, limit)

    def grade(self, output: str, rendered: Rendered) -> Grade:
        plan = parse_plan(output)
        gold = gold_stays(rendered.problem)
        matched = matched_prefix(gold, plan)
        answer = ", ".join(f"{city} {days}" for city, days in plan)
        return Grade(answer=answer, score=matched / len(gold), exact=1.0 if matched == len(gold) else 0.0)
