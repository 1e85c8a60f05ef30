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
from typing import ClassVar, NamedTuple, Protocol

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
        """The messages of the trace call: the preface (if any), then how to answer, then the test problem."""
        parts = [preface.strip()] if preface and preface.strip() else []
        parts.append(base_prompt(task, rendered))
        return (Message("user", "\n\n".join(parts)),)

    def build_preface(self, task: Task, pool: Sequence[PoolTrace]) -> tuple[list[dict[str, object]], str]:
        """(examples recorded in the ledger, the prompt block) from the pool's graded traces."""
        return [], ""

    def principle_messages(self, task: Task, mistakes: Sequence[PoolTrace]) -> tuple[Message, ...]:
        """LEAP only: the one call that writes principles from the model's own mistakes."""
        raise NotImplementedError(f"method {self.kind!r} does not learn principles")


def base_prompt(task: Task, rendered: Rendered) -> str:
    """The trace prompt of a method without a preface (Base): how to answer, then the problem."""
    return (
        "Solve the following problem. Think step by step, and end with your final answer, "
        f"given as {task.answer_format}.\n\nProblem:\n{rendered.question}"
    )


class AnswerPrompt(NamedTuple):
    """A forced-answer prompt (one user turn) and where its parts end, in characters.

    Attributes:
        text: the prompt.
        lead: how much of it is the Base trace prompt, word for word (0 in the standalone layout).
        cut_start: where the cut reasoning begins (everything before it is the same at every budget).
    """

    text: str
    lead: int
    cut_start: int


def answer_prompt(task: Task, rendered: Rendered, partial_trace: str, *, shared: bool = True) -> AnswerPrompt:
    """The forced-answer prompt at one budget, the same for every method (paper.md §8).

    The problem, the reasoning cut off at the budget between the exact markers, and an instruction
    to stop reasoning and give the best final answer now in the task's format.

    ``shared`` (the default, docs/caching.md): the prompt opens with the Base trace prompt word
    for word (its "Problem:" block is the standalone layout's opening), so that a provider's prompt
    cache serves the trace call's prompt and, from one budget to the next, everything up to the
    previous cut. ``shared=False``: the standalone layout used before, which opens with the problem.
    """
    opening = base_prompt(task, rendered) if shared else f"Problem:\n{rendered.question}"
    head = (
        f"{opening}\n\n"
        "Below is your reasoning on this problem so far. It was cut off at a token budget and may "
        f"stop mid-sentence.\n\n{REASONING_OPEN}\n"
    )
    text = (
        f"{head}{partial_trace}\n{REASONING_CLOSE}\n\n"
        "Stop reasoning now. Do not continue the reasoning or check it again. Based on the reasoning "
        "so far, give your best final answer immediately, even if the reasoning is incomplete, "
        f"as {task.answer_format}."
    )
    return AnswerPrompt(text=text, lead=len(opening) if shared else 0, cut_start=len(head))


def answer_messages(task: Task, rendered: Rendered, partial_trace: str, *, shared: bool = True) -> tuple[Message, ...]:
    """The forced-answer call's messages (see `answer_prompt`)."""
    return (Message("user", answer_prompt(task, rendered, partial_trace, shared=shared).text),)
