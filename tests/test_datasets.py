"""Dataset loaders: the in-repo slices, the registry, and errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import DatasetError
from runner.tasks.registry import TASK_KINDS, get_task

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize(
    ("kind", "path", "count"),
    [
        ("aime", DATA / "aime_2024.jsonl", 30),
        ("aime", DATA / "aime_2025.jsonl", 30),
        ("gpqa", DATA / "gpqa_sample.jsonl", 5),
        ("trip", DATA / "natural_plan" / "trip_planning_24.jsonl", 24),
        ("calendar", DATA / "natural_plan" / "calendar_scheduling_24.jsonl", 24),
        ("meeting", DATA / "natural_plan" / "meeting_planning_24.jsonl", 24),
    ],
)
def test_slices_load_and_limit(kind: str, path: Path, count: int) -> None:
    task = get_task(kind)
    problems = task.load(path)
    assert len(problems) == count and len({p.id for p in problems}) == count
    assert all(p.task == kind and p.statement for p in problems)
    assert [p.id for p in task.load(path, limit=3)] == [p.id for p in problems[:3]]


def test_aime_answers_are_normalised_integers() -> None:
    problems = get_task("aime").load(DATA / "aime_2024.jsonl")
    assert problems[0].id == "2024-I-1" and problems[0].gold == "204"
    assert all(str(int(p.gold)) == p.gold for p in problems)


def test_registry_knows_every_manifest_kind() -> None:
    assert set(TASK_KINDS) == {"aime", "gpqa", "trip", "meeting", "calendar"}
    with pytest.raises(KeyError, match="unknown dataset kind 'mmlu'"):
        get_task("mmlu")


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"id": "a", "problem": "p", "answer": "5"})


@pytest.mark.parametrize(
    ("kind", "bad_line", "needle"),
    [
        ("aime", "{not json", "not valid JSON"),
        ("aime", json.dumps({"id": "b", "problem": "p"}), "missing field 'answer'"),
        ("aime", json.dumps({"id": "b", "problem": "p", "answer": "x"}), "expected an integer"),
        ("aime", json.dumps(["a list"]), "expected a JSON object"),
        ("aime", GOOD, "duplicate id 'a'"),
        ("trip", json.dumps({"id": "t", "prompt_0shot": "p", "golden_plan": "g"}), "missing field 'cities'"),
        ("meeting", json.dumps({"id": "m", "prompt_0shot": "p", "constraints": "x"}), "expected list"),
        ("gpqa", json.dumps({"Question": "q", "Correct Answer": "a"}), "missing field 'Incorrect Answer 1'"),
        ("calendar", json.dumps({"id": "c", "prompt_0shot": "", "golden_plan": "g"}), "is empty"),
    ],
)
def test_malformed_record_names_file_and_line(tmp_path: Path, kind: str, bad_line: str, needle: str) -> None:
    first = GOOD if kind == "aime" else ""
    path = _write(tmp_path, [first, bad_line])
    with pytest.raises(DatasetError) as info:
        get_task(kind).load(path)
    assert info.value.line == 2 and info.value.path == str(path)
    assert needle in str(info.value) and "bad.jsonl:2" in str(info.value)


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        get_task("aime").load(tmp_path / "nope.jsonl")
