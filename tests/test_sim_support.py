"""Shared helpers for the simulator tests: small dataset files, prompts, and SSE events as the runner reads them."""

from __future__ import annotations

import json
from pathlib import Path

from runner.providers.sse import parse_all

AIME_GOLDS = [204, 25, 113, 7, 999, 0, 540, 73, 321, 88, 450, 16]

TRIP_ROW = {
    "id": "trip_planning_example_0",
    "num_cities": "3",
    "cities": "Helsinki**Barcelona**Florence",
    "durations": "5**5**6",
    "prompt_0shot": "You plan to visit 3 European cities for 14 days in "
    "total. You only take direct flights to "
    "commute between cities. You would like to visit Florence for 6 "
    "days. You would like to visit Barcelona for 5 "
    "days. You would like to visit Helsinki for 5 days.\n\nHere are the cities that have direct flights:\n"
    "Barcelona and Florence, Helsinki and Barcelona.\n\nFind a trip plan of visiting the cities for 14 days.",
    "golden_plan": "Here is the trip plan for visiting the 3 European cities for 14 days:\n\n"
    "**Day 1-5:** Arriving in Helsinki and visit Helsinki for 5 "
    "days.\n**Day 5:** Fly from Helsinki to Barcelona.\n"
    "**Day 5-9:** Visit Barcelona for 5 days.\n**Day 9:** Fly from Barcelona to Florence.\n"
    "**Day 9-14:** Visit Florence for 6 days.",
}
CALENDAR_ROW = {
    "id": "calendar_scheduling_example_0",
    "num_people": "2",
    "num_days": "1",
    "duration": "1",
    "prompt_0shot": "TASK: You need to schedule a meeting for Ann and Bo "
    "for one hour between the work hours of "
    "9:00 to 17:00 on Monday. Ann is busy on Monday during 9:00 to 14:00; Bo is busy during 15:30 to 17:00.\n"
    "SOLUTION: ",
    "golden_plan": "Here is the proposed time: Monday, 14:30 - 15:30 ",
}
MEETING_ROW = {
    "id": "meeting_planning_example_6",
    "num_people": 2,
    "constraints": [
        ["Nob Hill", "9:00AM"],
        ["Kim", "Presidio", "10:00AM to 1:00PM", 60],
        ["Lee", "Marina", "2:00PM to 5:00PM", 60],
    ],
    "dist_matrix": {
        "Nob Hill": {"Presidio": 17, "Marina": 11},
        "Presidio": {"Marina": 10, "Nob Hill": 18},
        "Marina": {"Presidio": 10, "Nob Hill": 12},
    },
    "prompt_0shot": "You are visiting San Francisco for the day and want "
    "to meet as many friends as possible. "
    "CONSTRAINTS: You arrive at Nob Hill at 9:00AM. Kim will be at "
    "Presidio from 10:00AM to 1:00PM. Lee will be at "
    "Marina from 2:00PM to 5:00PM. Your response should start with 'SOLUTION:'.",
    "golden_plan": [
        "You start at Nob Hill at 9:00AM.",
        "You travel to Presidio in 17 minutes and arrive at 9:17AM.",
        "You wait until 10:00AM.",
        "You meet Kim for 60 minutes from 10:00AM to 11:00AM.",
        "You travel to Marina in 10 minutes and arrive at 11:10AM.",
        "You wait until 2:00PM.",
        "You meet Lee for 60 minutes from 2:00PM to 3:00PM.",
    ],
}
GPQA_ROW = {
    "Record ID": "synthetic-001",
    "Question": "If the width of an infinite square well is halved, how does the ground-state energy change?",
    "Correct Answer": "It increases by a factor of 4",
    "Incorrect Answer 1": "It increases by a factor of 2",
    "Incorrect Answer 2": "It decreases by a factor of 4",
    "Incorrect Answer 3": "It is unchanged",
}


def aime_statement(i: int) -> str:
    head = f"[Q{i:02d}] A sequence satisfies a_(n+1) = a_n + {i + 3} with a_1 = {i}."
    return head + f" Find the remainder of a_{i + 50}."


def write_datasets(folder: Path) -> list[tuple[str, Path]]:
    """Write one small file per task kind and return (kind, path) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "aime": [{"id": f"q{i}", "problem": aime_statement(i), "answer": str(g)} for i, g in enumerate(AIME_GOLDS)],
        "trip": [TRIP_ROW],
        "calendar": [CALENDAR_ROW],
        "meeting": [MEETING_ROW],
        "gpqa": [GPQA_ROW],
    }
    pairs = []
    for kind, rows in files.items():
        path = folder / f"{kind}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        pairs.append((kind, path))
    return pairs


def gpqa_prompt(order: tuple[int, int, int, int]) -> tuple[str, str]:
    """A GPQA prompt with the options in ``order``; returns it and the gold letter."""
    texts = [GPQA_ROW["Correct Answer"], *(GPQA_ROW[f"Incorrect Answer {k}"] for k in (1, 2, 3))]
    lines = [f"({'ABCD'[pos]}) {texts[src]}" for pos, src in enumerate(order)]
    gold = "ABCD"[order.index(0)]
    return f"Answer the question.\n\n{GPQA_ROW['Question']}\n\n" + "\n".join(lines), gold


def forced_prompt(question: str, reasoning: str) -> str:
    return (
        f"{question}\n\nYour reasoning so far (cut off):\n<reasoning_so_far>{reasoning}</reasoning_so_far>\n"
        "Stop reasoning now and give your best final answer."
    )


def sse_events(raw: bytes) -> list[tuple[str, str]]:
    """(event name, data as text) of each whole SSE event, read by the runner's own parser (the
    name is "message" when the event has no ``event:`` line)."""
    return [(event.event, event.data.decode()) for event in parse_all(raw)]
