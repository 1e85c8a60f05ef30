"""The contract of a prompting method, and the forced-answer prompt every method shares.

A method decides what the *trace* call sees: the problem, an instruction, and for PDP / LEAP a
preface built once per (model, dataset) from a held-out pool. The forced-answer call at each
budget is the same for every method (paper.md §8), so the measured difference between methods
is the reasoning they elicit, nothing else.

Prompt rules the simulator relies on (it must treat every method alike):
- ``rendered.question`` appears verbatim in every prompt;
- in-context examples of other problems come before the test problem, so the test problem's
  statement is the last statement in the prompt;
- the truncated reasoning sits between ``<reasoning_so_far>`` and ``</reasoning_so_far>``.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar, Protocol

import msgspec

from runner.tasks.base import Rendered, Task
from runner.types import Message

REASONING_OPEN = "<reasoning_so_far>"
REASONING_CLOSE = "</reasoning_so_far>"


class MethodParams(Protocol):
    """What a method reads of its settings (the manifest's ``[methods.*]`` table satisfies it)."""

    @property
    def k(self) -> int:
        """Traces per pool problem (PDP / LEAP synthesis)."""
        ...

    @property
    def m(self) -> int:
        """Winner / loser pairs kept (PDP)."""
        ...


class MethodOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Settings for a method built without a manifest (tests, tools): the manifest's defaults."""

    k: int = 4
    m: int = 3


class PoolTrace(msgspec.Struct, frozen=True, kw_only=True):
    """One synthesis sample: a pool problem's trace cut at the synthesis budget, and its graded answer."""

    problem_id: str
    rendered_question: str
    trace_text: str
    answer: str
    score: float
    gold: str


class MethodStrategy(ABC):
    """How one method prompts the trace call (and, for PDP / LEAP, what its preface holds).

    Attributes:
        kind: the manifest's method kind.
        needs_synthesis: whether the pipeline must build a preface from a held-out pool first.
    """

    kind: ClassVar[str]
    needs_synthesis: ClassVar[bool] = False

    def __init__(self, params: MethodParams) -> None:
        self.params = params

    def trace_messages(self, task: Task, rendered: Rendered, preface: str | None) -> tuple[Message, ...]:
        """The messages of the trace call: the preface (if any), then the test problem, then how to answer."""
        parts = [preface.strip()] if preface and preface.strip() else []
        parts.append(
            "Solve the following problem. Think step by step, and end with your final answer, "
            f"given as {task.answer_format}.\n\nProblem:\n{rendered.question}"
        )
        return (Message("user", "\n\n".join(parts)),)

    def build_preface(self, task: Task, pool: Sequence[PoolTrace]) -> tuple[list[dict[str, object]], str]:
        """(examples recorded in the ledger, the prompt block) from the pool's graded traces."""
        return [], ""

    def principle_messages(self, task: Task, mistakes: Sequence[PoolTrace]) -> tuple[Message, ...]:
        """LEAP only: the one call that writes principles from the model's own mistakes."""
        raise NotImplementedError(f"method {self.kind!r} does not learn principles")


def answer_messages(task: Task, rendered: Rendered, partial_trace: str) -> tuple[Message, ...]:
    """The forced-answer call at one budget, the same for every method (paper.md §8).

    The problem, the reasoning cut off at the budget between the exact markers, and an instruction
    to stop reasoning and give the best final answer now in the task's format.
    """
    text = (
        f"Problem:\n{rendered.question}\n\n"
        "Below is your reasoning on this problem so far. It was cut off at a token budget and may "
        "stop mid-sentence.\n\n"
        f"{REASONING_OPEN}\n{partial_trace}\n{REASONING_CLOSE}\n\n"
        "Stop reasoning now. Do not continue the reasoning or check it again. Based on the reasoning "
        "so far, give your best final answer immediately, even if the reasoning is incomplete, "
        f"as {task.answer_format}."
    )
    return (Message("user", text),)
