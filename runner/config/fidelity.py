"""Trace fidelity: how much of a model's reasoning can be cut at exact token budgets.

- ``raw``: reasoning text streams as generated (grok-3-mini, DeepSeek-R1, gpt-oss, vLLM/SGLang
  reasoning models): snapshots are exact prefixes of the reasoning.
- ``content``: non-reasoning models; the chain of thought is the answer text itself.
- ``summarised``: Claude 4 thinking and Gemini 2.5 thoughts stream a summary; snapshots cut the
  summary while billing counts the hidden thinking.
- ``hidden``: OpenAI o-series / gpt-5 via Chat Completions: nothing to cut, so one call per budget
  with the output cap set to the budget.
"""

from __future__ import annotations

import re

FIDELITIES = ("raw", "content", "summarised", "hidden")

_RULES: tuple[tuple[str, str], ...] = (
    (r"^(o1|o3|o4)(-|$)|^gpt-5", "hidden"),
    # Claude 3.7 streams its full thinking; Claude 4 models stream a summary
    (r"grok-3-mini|grok-4|deepseek-reasoner|deepseek-r1|gpt-oss|qwq|qwen3|reasoner|claude-3-7", "raw"),
    # Claude 4 and Gemini 2.5 stream thought summaries, not the thinking itself
    (r"claude-(sonnet|opus|haiku)-4|claude-.*-4-|gemini-2\.5|gemini-3", "summarised"),
)


def default_fidelity(model_id: str) -> str:
    """The fidelity a model gets when the manifest does not say, from its name.

    A simulated model is named after the kind of model it imitates (``sim-o4-mini``,
    ``sim-claude-sonnet-4``): its ``sim-`` prefix is dropped before matching. Anything unknown is
    treated as a chain-of-thought (content) model.
    """
    lowered = model_id.lower().removeprefix("sim-")
    for pattern, fidelity in _RULES:
        if re.search(pattern, lowered):
            return fidelity
    return "content"
