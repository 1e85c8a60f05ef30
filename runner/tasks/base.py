"""The contract of a task: load problems, render them for a prompt, grade an answer.

A `Problem` is what a dataset file says. A `Rendered` problem is what one sample shows the model
(GPQA shuffles its options per (problem, seed), so the gold letter belongs to the rendering).
``Problem.statement`` appears verbatim in every prompt built from the problem; the simulator uses
it to recognise which problem a prompt is about.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import msgspec


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    task: str
    statement: str
    gold: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    problem: Problem
    question: str  # the full problem text for the prompt (options included for GPQA)
    gold: str  # the gold answer for this rendering (the letter, for GPQA)


class Grade(msgspec.Struct, frozen=True, kw_only=True):
    answer: str  # the parsed answer ("" when nothing could be parsed)
    score: float  # headline quality in [0, 1]
    exact: float | None = None  # exact match, where the headline is partial credit


class Task(ABC):
    kind: ClassVar[str]
    # what the final answer must look like; used by every method's prompts
    answer_format: ClassVar[str]
    # default cap on a forced answer's tokens (trip plans need more room than an integer)
    answer_max_tokens: ClassVar[int] = 256

    @abstractmethod
    def load(self, path: Path, limit: int | None = None) -> list[Problem]:
        """Read the file; raise `DatasetError` naming the file and line of a bad record."""

    def render(self, problem: Problem, seed: int) -> Rendered:
        return Rendered(problem=problem, question=problem.statement, gold=problem.gold)

    @abstractmethod
    def grade(self, output: str, rendered: Rendered) -> Grade:
        """Parse the model's final output and score it against the rendering's gold."""
