"""AIME grader on outputs written the way real models write them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- #12.10: an answer is exactly an integer 0-999; wrappers never hide it ----------------------


@pytest.mark.parametrize(
    ("output", "gold", "score"),
    [
        # a decimal or an expression is not the integer it starts with
        ("Answer: 19.5", "19", 0.0),
        ("The answer is 19.5.", "19", 0.0),
        ("\\boxed{19.5}", "19", 0.0),
        ("So the final answer is $\\boxed{19.50}$.", "19", 0.0),
        ("\\boxed{104\\sqrt{3}}", "104", 0.0),
        ("Answer: $104\\sqrt{3}$", "104", 0.0),
        ("The answer is 104\\sqrt{3}.", "104", 0.0),
        ("so the area is 104\\sqrt{3}.", "104", 0.0),
        ("\\boxed{12\\pi}", "12", 0.0),
        ("\\boxed{\\frac{16}{3}}", "16", 0.0),
        ("\\boxed{16/3}", "16", 0.0),
        ("Answer: 16 or 17", "16", 0.0),
        ("Answer: 16.5 hours", "16", 0.0),
        ("Answer: 1000", "0", 0.0),  # out of range: never right
        ("Answer: -16", "16", 0.0),
        # wrappers around a right answer
        ("\\boxed{16}", "16", 1.0),
        ("\\boxed{\\text{16}}", "16", 1.0),
        ("Answer: \\text{16}", "16", 1.0),
        ("\\boxed{\\textbf{16}}", "16", 1.0),
        ("\\boxed{\\mathbf{16}}", "16", 1.0),
        ("$16$", "16", 1.0),
        ("$$16$$", "16", 1.0),
        ("Answer: $16$", "16", 1.0),
        ("Answer: 016", "16", 1.0),
        ("\\boxed{016}", "16", 1.0),
        ("the answer is **16**.", "16", 1.0),
        ("The answer is __16__.", "16", 1.0),
        ("answer: `16`", "16", 1.0),
        ("*Answer*: 16", "16", 1.0),
        ("**Answer:** $\\boxed{16}$", "16", 1.0),
        ("The final answer is $\\boxed{16}$.", "16", 1.0),
        ("Thus, the answer is \\(\\boxed{16}\\).", "16", 1.0),
        ("Final Answer: \\[ \\boxed{16} \\]", "16", 1.0),
        ("ANSWER: 16", "16", 1.0),
        ("answer = 16", "16", 1.0),
        ("The answer would be 16.", "16", 1.0),
        ("Answer: (16)", "16", 1.0),
        ("Answer: 16.", "16", 1.0),
        ("\\boxed{16.}", "16", 1.0),
        ("\\boxed{16.0}", "16", 1.0),
        ("Answer: 16 minutes", "16", 1.0),
        ("Answer: $16 \\pmod{1000}$", "16", 1.0),
        ("\\boxed{60^\\circ}", "60", 1.0),
        ("Answer: \\$16", "16", 1.0),
        ("The answer is x = 16.", "16", 1.0),
        ("Therefore m + n = 116.", "116", 1.0),
        ("The remainder is 16.", "16", 1.0),
        ("answer is 16, since the other case is impossible", "16", 1.0),
        ("Answer:\n16", "16", 1.0),
        ("Answer: 1\\,000", "1000", 0.0),  # read as 1000, which no AIME answer is
        ("The answer is \\boxed{7}. Checking: 7 fits.", "7", 1.0),
        ("Answer: 12\n\nOn reflection, the answer is 19.5.", "12", 0.0),  # the last statement counts
    ],
)
def test_aime_answers_are_exact_integers(output: str, gold: str, score: float) -> None:
    assert AimeTask().grade(output, rendered(gold)).score == score


WRAPPERS = [
    "{}",
    "Answer: {}",
    "answer: {}",
    "ANSWER: {}",
    "The answer is {}.",
    "The final answer is {}.",
    "the answer is **{}**.",
    "**Final Answer:** {}",
    "Answer: ${}$",
    "Answer: \\({}\\)",
    "\\boxed{{{}}}",
    "$\\boxed{{{}}}$",
    "\\[\\boxed{{{}}}\\]",
    "\\boxed{{\\text{{{}}}}}",
    "Answer: \\text{{{}}}",
    "The answer is $\\boxed{{{}}}$.",
]
PROSE = st.text(alphabet=st.characters(categories=["L", "Zs"], max_codepoint=0x2FF), max_size=60)


@settings(max_examples=300, deadline=None)
@given(value=st.integers(0, 999), wrapper=st.sampled_from(WRAPPERS), zeros=st.integers(0, 2), prose=PROSE)
def test_a_wrapped_integer_is_read_whatever_the_wrapper(value: int, wrapper: str, zeros: int, prose: str) -> None:
    written = "0" * zeros + str(value)
    output = f"{prose}\n\n{wrapper.format(written)}"
    grade = AimeTask().grade(output, rendered(str(value)))
    assert (grade.answer, grade.score) == (str(value), 1.0)


@settings(max_examples=300, deadline=None)
@given(
    value=st.integers(0, 999),
    wrapper=st.sampled_from(WRAPPERS),
    tail=st.sampled_from([".5", ".25", ".999", "\\sqrt{3}", "\\sqrt{2}", "\\pi", "/3", "^2", "\\cdot 2", " + 1", "i"]),
)
def test_a_decimal_or_an_expression_never_counts_as_its_integer_part(value: int, wrapper: str, tail: str) -> None:
    output = wrapper.format(f"{value}{tail}")
    assert AimeTask().grade(output, rendered(str(value))).score == 0.0


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(0, 999),
    last=st.integers(0, 999),
    w1=st.sampled_from(WRAPPERS),
    w2=st.sampled_from(WRAPPERS[1:]),  # a bare number at the end is no statement: it does not override one
)
def test_the_last_stated_answer_counts(first: int, last: int, w1: str, w2: str) -> None:
    output = f"{w1.format(first)}\n\nWait, let me recheck.\n\n{w2.format(last)}"
    assert extract_integer(output) == str(last)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_grades_without_error(output: str) -> None:
    grade = AimeTask().grade(output, rendered("16"))
    assert grade.score in (0.0, 1.0)
    assert grade.score == 0.0 or grade.answer == "16"
