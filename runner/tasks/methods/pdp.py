"""Preference Data Prompting (paper.md §3.3, §8): the model's own winner / loser traces as examples.

At a fixed budget, K traces per held-out pool problem are graded by the task scorer; the best is
paired with the worst (ties skipped) and M pairs are kept. PDP shows each winner and loser with
labels; PDP(+) shows the winners only. The examples come before the test problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from runner.tasks.base import Task
from runner.tasks.methods.base import MethodStrategy, PoolTrace
from runner.tasks.methods.pool import preference_pairs

_INTRO = (
    "Here are worked examples on other problems of the same kind. Each shows reasoning that was "
    "cut off at a fixed token budget, and the answer it led to when the model had to answer at "
    "that point."
)
_INTRO_PAIRS = (
    " For each problem, a PREFERRED reasoning (its answer scored higher) is shown beside a "
    "DISPREFERRED one (its answer scored lower). Reason like the preferred examples: make steady, "
    "concrete progress so that a good answer is available early, and avoid the mistakes of the "
    "dispreferred ones."
)
_INTRO_WINNERS = (
    " Each reasoning shown scored well. Reason like these examples: make steady, concrete progress "
    "so that a good answer is available early."
)


def _trace_block(label: str, trace: PoolTrace) -> str:
    head = f"{label} (answer reached: {trace.answer or 'none'}; score {trace.score:.2f}):"
    return f"{head}\n{trace.trace_text.strip()}"


class PdpMethod(MethodStrategy):
    """PDP: labelled winner and loser traces from the held-out pool."""

    kind: ClassVar[str] = "pdp"
    needs_synthesis: ClassVar[bool] = True
    show_losers: ClassVar[bool] = True

    def build_preface(self, task: Task, pool: Sequence[PoolTrace]) -> tuple[list[dict[str, object]], str]:
        pairs = preference_pairs(pool, self.params.m)
        if not pairs:
            return [], ""  # every pool problem tied: nothing to contrast, the prompt is plain CoT
        examples: list[dict[str, object]] = []
        blocks = [_INTRO + (_INTRO_PAIRS if self.show_losers else _INTRO_WINNERS)]
        for number, (winner, loser) in enumerate(pairs, 1):
            example: dict[str, object] = {
                "problem_id": winner.problem_id,
                "winner": {
                    "answer": winner.answer,
                    "score": winner.score,
                    "trace": winner.trace_text,
                },
            }
            parts = [f"Example {number}\nProblem:\n{winner.rendered_question.strip()}"]
            if self.show_losers:
                example["loser"] = {
                    "answer": loser.answer,
                    "score": loser.score,
                    "trace": loser.trace_text,
                }
                parts.append(_trace_block("PREFERRED reasoning", winner))
                parts.append(_trace_block("DISPREFERRED reasoning", loser))
            else:
                parts.append(_trace_block("Reasoning", winner))
            examples.append(example)
            blocks.append("\n\n".join(parts))
        blocks.append("Now the problem to solve.")
        return examples, "\n\n---\n\n".join(blocks)


class PdpPlusMethod(PdpMethod):
    """PDP(+): the winners of the same pairs, without the losers."""

    kind: ClassVar[str] = "pdp_plus"
    show_losers: ClassVar[bool] = False
