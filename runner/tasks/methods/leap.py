"""LEAP (paper.md §3.2): principles learned from the model's own mistakes on the held-out pool.

The pipeline samples the pool like PDP, keeps the traces whose answers scored below 1, and makes
one call with `principle_messages`; the reply (a short list of principles) becomes the preface of
every trace call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from runner.tasks.base import Rendered, Task
from runner.tasks.methods.base import MethodStrategy, PoolTrace
from runner.types import Message

MAX_MISTAKES = 6  # keeps the one principle-writing prompt to a bounded size


class LeapMethod(MethodStrategy):
    kind: ClassVar[str] = "leap"
    needs_synthesis: ClassVar[bool] = True

    def trace_messages(self, task: Task, rendered: Rendered, preface: str | None) -> tuple[Message, ...]:
        block = None
        if preface and preface.strip():
            block = "Principles learned from earlier mistakes on problems of this kind:\n" + preface.strip()
        return super().trace_messages(task, rendered, block)

    def build_preface(self, task: Task, pool: Sequence[PoolTrace]) -> tuple[list[dict[str, object]], str]:
        # the pipeline uses the principles call's reply as the preface; nothing to build from traces
        return [], ""

    def principle_messages(self, task: Task, mistakes: Sequence[PoolTrace]) -> tuple[Message, ...]:
        chosen = _one_per_problem(mistakes)[:MAX_MISTAKES]
        parts = [
            "You are studying your own mistakes on problems of one kind, to learn principles that avoid them in future."
        ]
        for number, trace in enumerate(chosen, 1):
            parts.append(
                f"Mistake {number}\nProblem:\n{trace.rendered_question.strip()}\n\n"
                f"Your reasoning (cut off at a token budget):\n{trace.trace_text.strip()}\n\n"
                f"Your answer: {trace.answer or '(none)'}\nCorrect answer: {trace.gold}"
            )
        if not chosen:
            parts.append("On this pool you made no mistakes.")
        parts.append(
            "Compare your answers with the correct ones and write at most 5 short, general principles "
            "(one bullet each) that would help you reach a correct answer early on new problems of this "
            f"kind, whose answers are given as {task.answer_format}. Write only the bullets."
        )
        return (Message("user", "\n\n---\n\n".join(parts)),)


def _one_per_problem(traces: Sequence[PoolTrace]) -> list[PoolTrace]:
    """The worst-scored mistake of each problem first, then the rest, in pool order."""
    first: dict[str, PoolTrace] = {}
    for trace in traces:
        if trace.problem_id not in first or trace.score < first[trace.problem_id].score:
            first[trace.problem_id] = trace
    rest = [t for t in traces if t not in first.values()]
    return [*first.values(), *rest]
