"""GPQA: deterministic shuffling per (question, seed) and letter extraction."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- #12.10: the final choice the text settles on, in any letter case and phrasing -------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("I'll go with D", "D"),
        ("I'll go with d.", "D"),
        ("Answer: (b)", "B"),
        ("answer: c", "C"),
        ("Final answer: d.", "D"),
        ("the correct option is C", "C"),
        ("The correct option is (c).", "C"),
        ("Correct option: B", "B"),
        ("The best choice is (A)", "A"),
        ("My final choice: (d)", "D"),
        ("The right answer is C", "C"),
        ("It's not A, since the spin flips, so B.", "B"),
        ("not A ... so B", "B"),
        ("Not (a): the charge is conserved. Hence (c).", "C"),
        ("Option A is incorrect. Option B is wrong. The correct answer is D.", "D"),
        ("A is wrong and B is wrong, so the answer is C", "C"),
        ("So A is wrong, B is right.", "B"),
        ("Between A and C, I'd go with C.", "C"),
        ("I choose (B).", "B"),
        ("Let's go with b", "B"),
        ("I'd pick option c", "C"),
        ("We choose d", "D"),
        ("I will select A.", "A"),
        ("I'm going with option D", "D"),
        ("Going with B.", "B"),
        ("(D) is correct.", "D"),
        ("D is the correct answer.", "D"),
        ("\\boxed{\\text{(C)}}", "C"),
        ("$\\boxed{b}$", "B"),
        ("\\boxed{B: 4 times}", "B"),
        ("\\textbf{Answer: C}", "C"),
        ("**Answer:** $(C)$", "C"),
        ("Answer: \\(B\\)", "B"),
        ("The answer is $D$", "D"),
        ("Answer: [C]", "C"),
        ("Answer: B) It increases", "B"),
        ("Therefore, the correct answer is: D.", "D"),
        ("Thus the answer is (A).", "A"),
        ("**C**", "C"),
        ("c", "C"),
        ("(c)", "C"),
        ("So, B", "B"),
        # mentions are not choices
        ("The answer is a subtle one", ""),
        ("So a larger value follows", ""),
        ("the answer is not A", ""),
        ("Answer: Carbon", ""),
        ("Option A ignores the spin; option B ignores the field.", ""),
    ],
)
def test_gpqa_phrasings(output: str, expected: str) -> None:
    assert extract_letter(output) == expected


STATEMENTS = [
    "Answer: {}",
    "answer: ({})",
    "The answer is {}.",
    "The correct answer is ({}).",
    "the correct option is {}",
    "The best choice is {}.",
    "I'll go with {}",
    "I'll go with option {}.",
    "Let's go with ({})",
    "I choose {}.",
    "I'd pick {}.",
    "so {}.",
    "Hence ({}).",
    "**Answer:** ({})",
    "**Answer: {}**",
    "Final answer: \\boxed{{{}}}",
    "$\\boxed{{\\text{{({})}}}}$",
    "({}) is correct.",
]
DISTRACTORS = [
    "Option {} ignores the spin.",
    "It is not {}.",
    "{} is wrong because the charge is conserved.",
    "First I considered ({}), but it fails.",
    "Not {}: the units disagree.",
    "Answer: {}? No, that misreads the question.",
]


@settings(max_examples=400, deadline=None)
@given(
    letter=st.sampled_from("ABCD"),
    lower=st.booleans(),
    statement=st.sampled_from(STATEMENTS),
    distractors=st.lists(st.tuples(st.sampled_from(DISTRACTORS), st.sampled_from("ABCD")), max_size=3),
)
def test_the_final_choice_counts_not_the_letters_mentioned_before(
    letter: str, lower: bool, statement: str, distractors: list[tuple[str, str]]
) -> None:
    written = letter.lower() if lower else letter
    if statement[0] == "{" and lower:
        written = letter  # "a is correct" opens like prose; a capital is how a choice opens a sentence
    reasoning = " ".join(template.format(other) for template, other in distractors)
    assert extract_letter(f"{reasoning}\n\n{statement.format(written)}") == letter


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_grades_without_error(output: str) -> None:
    letter = extract_letter(output, {"A": "one", "B": "two", "C": "three", "D": "four"})
    assert letter in ("", "A", "B", "C", "D")
