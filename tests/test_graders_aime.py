"""AIME grader on outputs written the way real models write them."""

from __future__ import annotations

import pytest

from runner.tasks.aime import AimeTask, extract_integer
from runner.tasks.base import Problem, Rendered


def rendered(gold: str) -> Rendered:
    problem = Problem(id="t", task="aime", statement="Find N.", gold=gold)
    return Rendered(problem=problem, question=problem.statement, gold=gold)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Thus the total time is $\\boxed{204}$ minutes.", "204"),
        ("**Final Answer**\n\\[\n\\boxed{033}\n\\]", "33"),
        ("The answer is 25.", "25"),
        ("Answer: 025", "25"),
        ("So m+n = 116.\n\nFinal answer: **116**", "116"),
        ("We get $x = 12$ so the area is 540.", "540"),
        ("I first thought the answer is 12. Checking again, the final answer is 15.", "15"),
        ("\\boxed{12}\n\nWait, that misses a case. Recounting gives \\boxed{13}.", "13"),
        ("The answer is \\boxed{204 \\text{ minutes}}", "204"),
        ("Therefore the final answer is: $\\boxed{1{,}000}$", "1000"),
        ("Answer: \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("I can't be sure; the answer from step 3 was 120.", "120"),
        ("**Final Answer:** 116", "116"),
        ("**Answer**: 42", "42"),
        ("The final answer is $\\(42\\)$.", "42"),
        ("", ""),
        ("I cannot determine it without more work.", ""),
    ],
)
def test_extract_integer(output: str, expected: str) -> None:
    assert extract_integer(output) == expected


def test_grade_compares_integers_not_strings() -> None:
    task = AimeTask()
    assert task.grade("Answer: 025", rendered("25")).score == 1.0
    assert task.grade("\\boxed{25}", rendered("025")).score == 1.0
    assert task.grade("Answer: 26", rendered("25")).score == 0.0


def test_grade_takes_the_last_stated_answer_of_a_forced_answer() -> None:
    output = (
        "From the reasoning so far the candidate was 204, but the last step shows the coffee stop "
        "was counted twice.\n\nAnswer: 180"
    )
    grade = AimeTask().grade(output, rendered("204"))
    assert (grade.answer, grade.score) == ("180", 0.0)


def test_grade_of_unparseable_output_is_zero_with_empty_answer() -> None:
    grade = AimeTask().grade("The reasoning was cut off before any result.", rendered("7"))
    assert grade.answer == "" and grade.score == 0.0
