"""Prompting methods as small strategies: cot, pdp, pdp_plus, leap.

``get_method(kind, params)`` returns the strategy; ``answer_messages`` is the forced-answer prompt
every method shares; ``select_pool`` picks the held-out synthesis pool.
"""

from __future__ import annotations

from runner.tasks.methods.base import (
    REASONING_CLOSE,
    REASONING_OPEN,
    AnswerPrompt,
    MethodOptions,
    MethodParams,
    MethodStrategy,
    PoolTrace,
    answer_messages,
    answer_prompt,
    base_prompt,
)
from runner.tasks.methods.cot import CotMethod
from runner.tasks.methods.leap import LeapMethod
from runner.tasks.methods.pdp import PdpMethod, PdpPlusMethod
from runner.tasks.methods.pool import preference_pairs, select_pool

METHODS: dict[str, type[MethodStrategy]] = {cls.kind: cls for cls in (CotMethod, PdpMethod, PdpPlusMethod, LeapMethod)}


def get_method(kind: str, params: MethodParams | None = None) -> MethodStrategy:
    """The strategy for a method kind, configured by the manifest's method table.

    Raises:
        KeyError: the kind is unknown (the message lists the known ones).
        ValueError: ``k`` or ``m`` cannot build preference pairs.
    """
    if kind not in METHODS:
        raise KeyError(f"unknown method kind {kind!r} (known: {', '.join(METHODS)})")
    params = params if params is not None else MethodOptions()
    if METHODS[kind].needs_synthesis:
        if params.k < 2 and kind != "leap":
            raise ValueError(f"`k` must be at least 2 to pair a winner with a loser, got {params.k}")
        if params.m < 1:
            raise ValueError(f"`m` must be at least 1, got {params.m}")
    return METHODS[kind](params)


__all__ = [
    "METHODS",
    "REASONING_CLOSE",
    "REASONING_OPEN",
    "AnswerPrompt",
    "MethodOptions",
    "MethodParams",
    "MethodStrategy",
    "PoolTrace",
    "answer_messages",
    "answer_prompt",
    "base_prompt",
    "get_method",
    "preference_pairs",
    "select_pool",
]
