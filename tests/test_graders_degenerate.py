"""Graders read degenerate outputs (a model stuck in a loop writes long runs of spaces, markers or
braces) in time linear in their length: each case here backtracked without end, or in quadratic
time, before (``answer`` and 200 spaces took 36 s to grade; 20,000 nested boxes, hours)."""

from __future__ import annotations

import pytest

from runner.tasks.aime import extract_integer
from runner.tasks.gpqa import extract_letter

N = 20_000

DEGENERATE = [
    ("answer" + " " * N + "x", "", ""),
    ("so" + " " * N + "x", "", ""),
    ("answer is" + " *" * N + "x", "", ""),
    ("I choose" + " " * N, "", ""),
    ("answer: \n" * (N // 10), "", ""),
    ("the answer is " + "1" * N, "1" * 300, ""),  # a value is read from the 300 characters after its marker
    ("\\boxed{" * N, "", ""),
    ("\\text{" * N + "16", "16", ""),
    ("{" * N + "\\boxed{16}", "16", ""),
    ("\\boxed{" * N + "16" + "}" * N, "16", ""),
    ("\\boxed{" * N + "B" + "}" * N, "B", "B"),
    ("$\\boxed{12}$ " * (N // 10) + "Answer: 13", "13", ""),
    ("(A) " * N + "Answer: (c)", "", "C"),
]


@pytest.mark.parametrize(("output", "integer", "letter"), DEGENERATE, ids=range(len(DEGENERATE)))
def test_a_degenerate_output_is_graded(output: str, integer: str, letter: str) -> None:
    assert extract_integer(output) == integer
    assert extract_letter(output) == letter
