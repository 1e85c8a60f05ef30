"""Trace fidelity: how much of a model's reasoning can be cut at exact token budgets.

- ``raw``: reasoning text streams as generated (grok-3-mini, DeepSeek-R1, gpt-oss, vLLM/SGLang
  reasoning models): snapshots are exact prefixes of the reasoning.
- ``content``: non-reasoning models; the chain of thought is the answer text itself.
- ``summarised``: Claude 4 thinking and Gemini 2.5 thoughts stream a summary; snapshots cut the
  summary while billing counts the hidden thinking.
- ``hidden``: OpenAI o-series / gpt-5 via Chat Completions: nothing to cut, so one call per budget
  with the output cap set to the budget.

A model the table does not know is a chain-of-thought (``content``) model, except on the
Anthropic Messages API: every Claude model since 3.7 can think, so an unknown Claude model is
asked for extended thinking (``summarised``) and the run says so once; Claude models before 3.7,
which cannot think, are in the table as ``content``. ``fidelity = "content"`` in the manifest
turns thinking off for any model.
"""

from __future__ import annotations

import re

FIDELITIES = ("raw", "content", "summarised", "hidden")

_RULES: tuple[tuple[str, str], ...] = (
    (r"^(o1|o3|o4)(-|$)|^gpt-5", "hidden"),
    # Claude models before 3.7 have no extended thinking: their chain of thought is the answer text
    (r"claude-(instant|2)|claude-3-(opus|sonnet|haiku)|claude-3-5-", "content"),
    # Claude 3.7 streams its full thinking; Claude 4 models stream a summary
    (r"grok-3-mini|grok-4|deepseek-reasoner|deepseek-r1|gpt-oss|qwq|qwen3|reasoner|claude-3-7", "raw"),
    # Claude 4 and Gemini 2.5 stream thought summaries, not the thinking itself
    (r"claude-(sonnet|opus|haiku)-4|claude-.*-4-|gemini-2\.5|gemini-3", "summarised"),
)


# the provider kinds whose unknown models are asked to think (a new model there thinks)
_THINKING_BY_DEFAULT = {"anthropic": "summarised"}


def default_fidelity(model_id: str, provider_kind: str = "") -> str:
    """The fidelity a model gets when the manifest does not say (see `fidelity_for`)."""
    return fidelity_for(model_id, provider_kind)[0]


def fidelity_for(model_id: str, provider_kind: str) -> tuple[str, str | None]:
    """The fidelity a model gets when the manifest does not say, and a note when it is a guess.

    A simulated model is named after the kind of model it imitates (``sim-o4-mini``,
    ``sim-claude-sonnet-4``): its ``sim-`` prefix is dropped before matching. A model the table
    does not know is a chain-of-thought (content) model, except on a provider kind in
    ``_THINKING_BY_DEFAULT`` (Anthropic), where it is asked to think and the note says so.
    """
    lowered = model_id.lower().removeprefix("sim-")
    for pattern, fidelity in _RULES:
        if re.search(pattern, lowered):
            return fidelity, None
    thinking = _THINKING_BY_DEFAULT.get(provider_kind)
    if thinking is None:
        return "content", None
    note = (
        f"{model_id!r} is not in the fidelity table: on a provider of kind {provider_kind!r} it is asked for "
        f'extended thinking (fidelity {thinking}); set fidelity = "content" if it has none'
    )
    return thinking, note
