"""Per-task answer logic: the gold answer, plausible wrong candidates, and answer formats.

A candidate is stated in a trace with a fixed phrase (``current answer is``, ``current plan is``,
``current schedule is``) so that a forced-answer request can find the last one stated in the
reasoning it is shown. Answers are plain values: an int (AIME), a letter (GPQA), a
(day, start, end) triple (calendar), a tuple of (city, days) stays (trip), a tuple of step
sentences (meeting).
"""

from __future__ import annotations

import random
import re
from typing import Any

from runner.tasks.base import Problem

Answer = Any
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


class TaskLogic:
    """Base: a task whose answer is right or wrong as a whole (``units`` = 1)."""

    kind = "generic"

    def gold(self, problem: Problem, prompt: str) -> Answer | None:
        raise NotImplementedError

    def units(self, gold: Answer) -> int:
        return 1

    def candidate(self, gold: Answer | None, right: int, rng: random.Random, prompt: str) -> Answer:
        """A candidate with ``right`` of ``units(gold)`` parts right (all of them: the gold)."""
        if gold is not None and right >= self.units(gold):
            return gold
        return self.wrong(gold, rng, prompt)

    def wrong(self, gold: Answer | None, rng: random.Random, prompt: str) -> Answer:
        raise NotImplementedError

    def statement(self, answer: Answer) -> str:
        raise NotImplementedError

    def parse_last(self, text: str) -> tuple[int, Answer] | None:
        """The last candidate stated in ``text`` and where it ends, or None."""
        raise NotImplementedError

    def final(self, answer: Answer) -> str:
        raise NotImplementedError


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 - we want the last match
        pass
    return found


class Aime(TaskLogic):
    kind = "aime"
    _stated = re.compile(r"current answer is (\d{1,4})\.")

    def gold(self, problem: Problem, prompt: str) -> int | None:
        try:
            return int(problem.gold.strip())
        except ValueError:
            return None

    def wrong(self, gold: int | None, rng: random.Random, prompt: str) -> int:
        while True:
            roll = rng.random()
            if gold is None or roll < 0.4:
                value = rng.randrange(1000)
            elif roll < 0.8:
                value = gold + rng.choice((-1, 1)) * rng.randint(1, 40)
            else:
                value = (gold * rng.choice((2, 3)) + rng.randint(0, 9)) % 1000
            if 0 <= value <= 999 and value != gold:
                return value

    def statement(self, answer: int) -> str:
        return f" So the current answer is {answer}."

    def parse_last(self, text: str) -> tuple[int, int] | None:
        m = _last(self._stated, text)
        return (m.end(), int(m.group(1))) if m else None

    def final(self, answer: int) -> str:
        return f"Answer: {answer}"


class Gpqa(TaskLogic):
    kind = "gpqa"
    _option = re.compile(r"^[ \t]*\(?([A-J])[\).:][ \t]+(.+?)[ \t]*$", re.MULTILINE)
    _stated = re.compile(r"current answer is \(([A-J])\)\.")

    def _options(self, prompt: str, after: int = 0) -> list[tuple[str, str]]:
        options = [(m.group(1), m.group(2)) for m in self._option.finditer(prompt, after)]
        if not options and after:
            options = [(m.group(1), m.group(2)) for m in self._option.finditer(prompt)]
        return options[-4:] if len(options) > 4 and options[-4][0] == "A" else options

    def gold(self, problem: Problem, prompt: str) -> str | None:
        options = self._options(prompt, max(prompt.rfind(problem.statement), 0))
        wanted = {_norm(problem.gold), _norm(str(problem.data.get("Correct Answer", "")))} - {""}
        for letter, text in options:
            if _norm(text) in wanted:
                return letter
        gold = problem.gold.strip().strip("()")
        return gold if re.fullmatch(r"[A-J]", gold) else None

    def wrong(self, gold: str | None, rng: random.Random, prompt: str) -> str:
        letters = sorted({letter for letter, _ in self._options(prompt)}) or ["A", "B", "C", "D"]
        others = [x for x in letters if x != gold] or ["A", "B", "C", "D"]
        return rng.choice(others)

    def statement(self, answer: str) -> str:
        return f" So the current answer is ({answer})."

    def parse_last(self, text: str) -> tuple[int, str] | None:
        m = _last(self._stated, text)
        return (m.end(), m.group(1)) if m else None

    def final(self, answer: str) -> str:
        return f"Answer: {answer}"


def _norm(text: str) -> str:
    return " ".join(text.split()).lower().rstrip(".")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


class Calendar(TaskLogic):
    kind = "calendar"
    _slot = re.compile(r"([A-Za-z]+), (\d{1,2}):(\d{2}) - (\d{1,2}):(\d{2})")
    # the trace says "Monday from 9:30 to 10:30", so that only the final answer matches the official
    # first-match rule (`Word, H:MM - H:MM`) when a chain-of-thought answer is graded whole
    _stated = re.compile(r"current answer is ([A-Za-z]+) from (\d{1,2}):(\d{2}) to (\d{1,2}):(\d{2})\.")

    @staticmethod
    def _triple(m: re.Match[str]) -> tuple[str, int, int]:
        day, h1, m1, h2, m2 = m.groups()
        return (day, int(h1) * 60 + int(m1), int(h2) * 60 + int(m2))

    def gold(self, problem: Problem, prompt: str) -> tuple[str, int, int] | None:
        m = self._slot.search(problem.gold)
        return self._triple(m) if m else None

    def wrong(self, gold: tuple[str, int, int] | None, rng: random.Random, prompt: str) -> tuple[str, int, int]:
        days = [d for d in _WEEKDAYS if d in prompt] or ["Monday"]
        day, start, end = gold if gold is not None else (days[0], 9 * 60, 10 * 60)
        length = max(end - start, 30)
        while True:
            new_day = rng.choice(days) if rng.random() < 0.3 else day
            new_start = start + rng.choice((-120, -90, -60, -30, 30, 60, 90, 120))
            candidate = (new_day, new_start, new_start + length)
            if 9 * 60 <= new_start and new_start + length <= 17 * 60 and candidate != gold:
                return candidate

    def statement(self, answer: tuple[str, int, int]) -> str:
        day, start, end = answer
        return f" So the current answer is {day} from {_hhmm(start)} to {_hhmm(end)}."

    def parse_last(self, text: str) -> tuple[int, tuple[str, int, int]] | None:
        m = _last(self._stated, text)
        return (m.end(), self._triple(m)) if m else None

    def final(self, answer: tuple[str, int, int]) -> str:
        day, start, end = answer
        return f"Here is the proposed time: {day}, {_hhmm(start)} - {_hhmm(end)}"


_STAY = re.compile(r"\*\*Day (\d+)-(\d+):\*\* (?:Arriving in .+? and visit|Visit) (.+?) for (\d+) days?\.")


def plan_lines(stays: tuple[tuple[str, int], ...]) -> list[str]:
    """The official NaturalPlan trip format for a sequence of (city, days) stays."""
    lines: list[str] = []
    day = 1
    for i, (city, days) in enumerate(stays):
        end = day + days - 1
        if i == 0:
            lines.append(f"**Day {day}-{end}:** Arriving in {city} and visit {city} for {days} days.")
        else:
            lines.append(f"**Day {day}-{end}:** Visit {city} for {days} days.")
        if i + 1 < len(stays):
            lines.append(f"**Day {end}:** Fly from {city} to {stays[i + 1][0]}.")
        day = end
    return lines


def parse_stays(text: str) -> tuple[tuple[str, int], ...]:
    return tuple((m.group(3), int(m.group(4))) for m in _STAY.finditer(text))


class Trip(TaskLogic):
    """Partial credit: a candidate gets a number of leading stays right."""

    kind = "trip"
    # stated without day ranges, so the official parser of a whole chain of thought reads only the
    # final plan
    _stated = re.compile(r"current plan is: (.*?)\. That is the plan so far\.")
    _stay = re.compile(r"(.+?) for (\d+) days?")

    def gold(self, problem: Problem, prompt: str) -> tuple[tuple[str, int], ...] | None:
        return parse_stays(problem.gold) or None

    def units(self, gold: tuple[tuple[str, int], ...]) -> int:
        return len(gold)

    def candidate(self, gold: Any, right: int, rng: random.Random, prompt: str) -> Any:
        if gold is None:
            return self.wrong(None, rng, prompt)
        if right >= len(gold):
            return gold
        rest = list(gold[right:])
        rng.shuffle(rest)
        if rest[0] == gold[right]:
            if len(rest) > 1:
                rest[0], rest[1] = rest[1], rest[0]
            else:
                city, days = rest[0]
                rest[0] = (city, days + 1 if days == 1 or rng.random() < 0.5 else days - 1)
        return (*gold[:right], *rest)

    def wrong(self, gold: Any, rng: random.Random, prompt: str) -> Any:
        if gold is not None:
            return self.candidate(gold, 0, rng, prompt)
        cities = re.findall(r"visit ([A-Z][a-z]+) for (\d+) days", prompt)
        stays = [(c, int(d)) for c, d in dict(cities).items()] or [("Paris", 3), ("Rome", 3)]
        rng.shuffle(stays)
        return tuple(stays)

    def statement(self, answer: Any) -> str:
        stays = ", then ".join(f"{city} for {days} days" for city, days in answer)
        return f" So my current plan is: {stays}. That is the plan so far."

    def parse_last(self, text: str) -> tuple[int, Any] | None:
        m = _last(self._stated, text)
        if not m:
            return None
        stays = []
        for part in m.group(1).split(", then "):
            found = self._stay.fullmatch(part)
            if found is None:
                return None
            stays.append((found.group(1), int(found.group(2))))
        return (m.end(), tuple(stays)) if stays else None

    def final(self, answer: Any) -> str:
        lines = plan_lines(answer)
        total = 1 + sum(days - 1 for _, days in answer)
        header = f"Here is the trip plan for visiting the {len(answer)} European cities for {total} days:"
        return header + "\n\n" + "\n".join(lines)


_STEP_SPLIT = re.compile(r"(?<=\.)\s+(?=[A-Z])")


class Meeting(TaskLogic):
    kind = "meeting"
    # no "SOLUTION:" inside the trace: the official rule reads from its first occurrence
    _stated = re.compile(r"current schedule is: (.*?) That is the schedule so far\.", re.DOTALL)

    def gold(self, problem: Problem, prompt: str) -> tuple[str, ...] | None:
        raw = problem.data.get("golden_plan")
        steps = [str(s).strip() for s in raw] if isinstance(raw, list) else _STEP_SPLIT.split(problem.gold.strip())
        steps = [s if s.endswith(".") else s + "." for s in steps if s]
        return tuple(steps) or None

    def wrong(self, gold: tuple[str, ...] | None, rng: random.Random, prompt: str) -> tuple[str, ...]:
        if not gold:
            return ("You start at the hotel at 9:00AM.", "You wait until 10:00AM.")
        meets = [i for i, step in enumerate(gold) if step.startswith("You meet")]
        if len(meets) <= 1:
            return (*gold[:1], "You wait until 9:30AM.")
        drop = rng.randint(1, len(meets) - 1)
        return gold[: meets[-drop - 1] + 1]

    def statement(self, answer: tuple[str, ...]) -> str:
        return " So my current schedule is: " + " ".join(answer) + " That is the schedule so far."

    def parse_last(self, text: str) -> tuple[int, tuple[str, ...]] | None:
        m = _last(self._stated, text)
        if not m:
            return None
        steps = tuple(s.strip() for s in _STEP_SPLIT.split(m.group(1).strip()) if s.strip())
        return (m.end(), steps) if steps else None

    def final(self, answer: tuple[str, ...]) -> str:
        return "SOLUTION: " + " ".join(answer)


TASKS: dict[str, TaskLogic] = {t.kind: t for t in (Aime(), Gpqa(), Calendar(), Trip(), Meeting())}


def parse_any(text: str) -> tuple[TaskLogic, Answer] | None:
    """The last candidate of any task stated in ``text`` (for prompts of no known problem)."""
    best: tuple[int, TaskLogic, Answer] | None = None
    for logic in TASKS.values():
        found = logic.parse_last(text)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], logic, found[1])
    return (best[1], best[2]) if best else None
