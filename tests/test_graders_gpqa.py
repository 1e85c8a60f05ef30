"""GPQA: deterministic shuffling per (question, seed) and letter extraction."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import DatasetError
from runner.tasks.gpqa import GpqaTask, extract_letter

DATA = Path(__file__).resolve().parent.parent / "data" / "gpqa_sample.jsonl"


def test_render_is_deterministic_per_problem_and_seed() -> None:
    task = GpqaTask()
    problems = task.load(DATA)
    for problem in problems:
        first = task.render(problem, 3)
        assert first == task.render(problem, 3)
        assert first.question.startswith(problem.statement)
        options = [line[4:] for line in first.question.splitlines() if line[:1] == "("]
        assert sorted(options) == sorted(problem.data["options"])
        assert options["ABCD".index(first.gold)] == problem.gold


def test_seeds_move_the_correct_option() -> None:
    task = GpqaTask()
    problem = task.load(DATA)[0]
    golds = {task.render(problem, seed).gold for seed in range(40)}
    assert len(golds) >= 3  # the correct option does not sit under one letter


def test_rendered_options_are_lines_after_the_statement() -> None:
    task = GpqaTask()
    rendered = task.render(task.load(DATA)[1], 0)
    tail = rendered.question[len(rendered.problem.statement) :].strip().splitlines()
    assert [line[:4] for line in tail] == ["(A) ", "(B) ", "(C) ", "(D) "]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Answer: C", "C"),
        ("The correct answer is (B).", "B"),
        ("**Answer: (D)**", "D"),
        ("Final answer: \\boxed{A}", "A"),
        ("B", "B"),
        ("**Answer**: C", "C"),
        ("**Answer:** (C) It increases by a factor of 4", "C"),
        ("(C)", "C"),
        ("Option A ignores the spin. The answer is D, since ...", "D"),
        ("I first leaned to Answer: A, but rechecking the units, Answer: B", "B"),
        ("The answer is a subtle one: it increases by a factor of 4.", ""),
        ("No idea.", ""),
    ],
)
def test_extract_letter(output: str, expected: str) -> None:
    assert extract_letter(output) == expected


def test_extract_letter_falls_back_to_quoted_option_text() -> None:
    options = {"A": "It is unchanged", "B": "It increases by a factor of 4", "C": "x", "D": "y"}
    assert extract_letter("Therefore it increases by a factor of 4.", options) == "B"


def test_grade_uses_the_rendering_gold_letter() -> None:
    task = GpqaTask()
    rendered = task.render(task.load(DATA)[0], 5)
    wrong = next(letter for letter in "ABCD" if letter != rendered.gold)
    assert task.grade(f"Answer: {rendered.gold}", rendered).score == 1.0
    assert task.grade(f"Answer: {wrong}", rendered).score == 0.0


def test_official_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "gpqa_diamond.csv"
    path.write_text(
        "Pre-Revision Question,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,"
        "Incorrect Answer 3,Record ID\n"
        'old,"What is 2+2?\nThink.",4,3,5,22,recABC\n',
        encoding="utf-8",
    )
    (problem,) = GpqaTask().load(path)
    assert problem.id == "recABC" and problem.statement == "What is 2+2?\nThink." and problem.gold == "4"


def test_csv_missing_column_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2\nq,a,b,c\n")
    with pytest.raises(DatasetError) as info:
        GpqaTask().load(path)
    assert info.value.line == 2 and "Incorrect Answer 3" in str(info.value) and "g.csv:2" in str(info.value)
