"""NaturalPlan graders: the official reference figures, and partial plans scored by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.tasks.base import Problem, Rendered
from runner.tasks.calendar import CalendarTask, parse_slot
from runner.tasks.meeting import MeetingTask
from runner.tasks.trip import TripTask, parse_plan

REPO = Path(__file__).resolve().parent.parent
SLICES = REPO / "data" / "natural_plan"
ORIGINALS = REPO.parent / "shared" / "data" / "natural_plan" / "originals" / "rikhil-amonkar_calendar-planning"


def _originals_as_jsonl(name: str, tmp_path: Path) -> tuple[Path, dict]:
    records = json.loads((ORIGINALS / name).read_text(encoding="utf-8"))
    path = tmp_path / (name + "l")
    path.write_text("\n".join(json.dumps({"id": key, **value}) for key, value in records.items()) + "\n")
    return path, records


@pytest.mark.skipif(not ORIGINALS.is_dir(), reason="needs ../shared/data beside the repository")
@pytest.mark.parametrize(
    ("task", "name", "expected"),
    [
        (TripTask(), "trip_planning_100.json", 0.33),
        (CalendarTask(), "calendar_scheduling_100.json", 0.56),
        (MeetingTask(), "meeting_planning_100.json", 0.38),
    ],
)
def test_official_reference_figures(task, name: str, expected: float, tmp_path: Path) -> None:
    path, records = _originals_as_jsonl(name, tmp_path)
    grades = [task.grade(records[p.id]["pred_5shot_pro"], task.render(p, 0)) for p in task.load(path)]
    official = [g.exact if g.exact is not None else g.score for g in grades]
    assert sum(official) / len(official) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("task", "name"),
    [
        (TripTask(), "trip_planning_24.jsonl"),
        (CalendarTask(), "calendar_scheduling_24.jsonl"),
        (MeetingTask(), "meeting_planning_24.jsonl"),
    ],
)
def test_every_gold_plan_scores_one(task, name: str) -> None:
    problems = task.load(SLICES / name)
    assert len(problems) == 24
    for problem in problems:
        grade = task.grade(problem.gold, task.render(problem, 0))
        assert grade.score == 1.0, problem.id


def _trip() -> Rendered:
    problem = Problem(
        id="t",
        task="trip",
        statement="You plan to visit 3 European cities for 14 days in total.",
        gold="",
        data={"cities": "Helsinki**Barcelona**Florence", "durations": "5**5**6"},
    )
    return Rendered(problem=problem, question=problem.statement, gold="")


GOOD_PLAN = """Here is the trip plan for visiting the 3 European cities for 14 days:

**Day 1-5:** Arriving in Helsinki and visit Helsinki for 5 days.
**Day 5:** Fly from Helsinki to Barcelona.
**Day 5-9:** Visit Barcelona for 5 days.
**Day 9:** Fly from Barcelona to Florence.
**Day 9-14:** Visit Florence for 6 days."""


def test_trip_exact_and_partial_credit() -> None:
    grade = TripTask().grade(GOOD_PLAN, _trip())
    assert (grade.score, grade.exact) == (1.0, 1.0)
    # the second stay is a day short: one of three gold stays matched as a prefix
    partial = GOOD_PLAN.replace("Day 5-9", "Day 5-8").replace("Day 9:", "Day 8:").replace("Day 9-14", "Day 8-14")
    grade = TripTask().grade(partial, _trip())
    assert grade.score == pytest.approx(1 / 3) and grade.exact == 0.0


def test_trip_plan_cut_off_after_two_cities_gets_partial_credit() -> None:
    cut = "\n".join(GOOD_PLAN.splitlines()[:5])  # no flight to Florence yet
    assert parse_plan(cut) == [("Helsinki", 5), ("Barcelona", 5)]
    grade = TripTask().grade(cut, _trip())
    assert grade.score == pytest.approx(2 / 3) and grade.exact == 0.0


def test_trip_alternative_plan_after_the_end_is_ignored() -> None:
    text = GOOD_PLAN + "\n\nAlternatively:\n**Day 1-6:** Visit Florence.\n**Day 6:** Fly from Florence to Rome."
    assert TripTask().grade(text, _trip()).exact == 1.0


def test_trip_prose_without_ranges_scores_zero() -> None:
    grade = TripTask().grade("I would start in Helsinki, then Barcelona, then Florence.", _trip())
    assert (grade.score, grade.exact, grade.answer) == (0.0, 0.0, "")


def test_calendar_slot_rules() -> None:
    assert parse_slot("Here is the proposed time: Monday, 14:30 - 15:30 ") == ("Monday", 14.5, 15.5)
    assert parse_slot("Tuesday, 9:15 - 9:45") == ("Tuesday", 9.0, 9.0)  # official quirk: :15 reads as :00
    assert parse_slot("no time here") == ("", -1.0, -1.0)


def test_calendar_takes_the_first_slot() -> None:
    problem = Problem(id="c", task="calendar", statement="s", gold="Here is the proposed time: Monday, 14:30 - 15:30 ")
    rendered = Rendered(problem=problem, question="s", gold=problem.gold)
    task = CalendarTask()
    assert task.grade("Monday, 14:30 - 15:30 works. (Not Monday, 10:00 - 11:00.)", rendered).score == 1.0
    assert task.grade("Monday, 10:00 - 11:00, or else Monday, 14:30 - 15:30", rendered).score == 0.0


def test_meeting_simulation_stops_at_the_first_bad_step() -> None:
    task = MeetingTask()
    problem = task.load(SLICES / "meeting_planning_24.jsonl")[0]  # one friend: Kenneth at Nob Hill
    rendered = task.render(problem, 0)
    good = "SOLUTION: " + " ".join(problem.data["golden_plan"])
    assert task.grade(good, rendered).score == 1.0
    early = (
        "SOLUTION: You start at Fisherman's Wharf at 9:00AM. You travel to Nob Hill in 11 minutes and "
        "arrive at 9:11AM. You meet Kenneth for 90 minutes from 9:11AM to 10:41AM."
    )
    assert task.grade(early, rendered).score == 0.0  # before his window opens
    assert task.grade("I would meet Kenneth in the afternoon.", rendered).score == 0.0


FULL = REPO.parent / "shared" / "data" / "natural_plan"


@pytest.mark.skipif(not FULL.is_dir(), reason="needs ../shared/data beside the repository")
@pytest.mark.parametrize(
    ("task", "name", "count"),
    [
        (TripTask(), "trip_planning.jsonl", 1600),
        (CalendarTask(), "calendar_scheduling.jsonl", 1000),
        (MeetingTask(), "meeting_planning_100.jsonl", 100),
    ],
)
def test_every_gold_plan_of_the_full_files_scores_one(task, name: str, count: int) -> None:
    problems = task.load(FULL / name)
    assert len(problems) == count
    assert all(task.grade(p.gold, task.render(p, 0)).score == 1.0 for p in problems)
