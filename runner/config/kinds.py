"""Static facts of each provider kind that planning needs, in one table.

The adapters in `runner.providers` speak the protocols; what a plan must know before any call
(whether a key is needed, the smallest thinking budget the API accepts, whether the built-in
simulator serves the lane, how the provider caches prompts) lives here, so that `anytime run`,
`anytime estimate`, `validate` and `doctor` cannot disagree about it.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Provider(Protocol):
    """The fields of a manifest ``[providers.*]`` table these facts depend on."""

    @property
    def kind(self) -> str: ...

    @property
    def base_url(self) -> str | None: ...

    @property
    def api_key_env(self) -> str | None: ...


SIM_SCHEME = "sim://"
# the schemes a `base_url` may have: a real host, or the built-in simulator
URL_SCHEMES = ("http://", "https://", SIM_SCHEME)
# the simulator, local llama.cpp servers and self-hosted OpenAI-compatible servers may have no key
KEYLESS_KINDS = frozenset({"sim", "llamacpp", "openai_compatible"})
# kinds with no public endpoint: the manifest must say where the server is (`sim` without a URL
# is the simulator the run starts; `runner.providers.registry` holds every other kind's default)
NO_DEFAULT_URL_KINDS = frozenset({"openai_compatible"})
# the smallest thinking budget a protocol accepts (Anthropic rejects `budget_tokens` under 1024)
MIN_THINKING_BUDGET: dict[str, int] = {"anthropic": 1024}
# the encoding the built-in simulator counts tokens with: counting with it there is exact
SIMULATOR_ENCODING = "o200k_base"
# kinds whose request tells the model its thinking budget (Anthropic ``budget_tokens``, Gemini
# ``thinkingBudget``, llama.cpp ``reasoning_budget_tokens``): a trace made with another budget is
# another trace. Every other kind leaves `ChatRequest.reasoning_budget` out of the request.
THINKING_BUDGET_SENT = frozenset({"anthropic", "gemini", "llamacpp"})
# kinds that continue a chain-of-thought trace from an assistant prefill, as their documentation
# states it (docs/reuse.md, "Continuing a trace"): Anthropic's Messages API continues a final
# assistant turn that does not end in whitespace, but not with extended thinking on
CONTINUES_FROM_PREFILL = frozenset({"anthropic"})
# kinds whose protocol has no seed (the Messages and Responses APIs): a trace requested again there
# is a new draw, where a seeded host reproduces the stored one (as far as the host is deterministic)
SEEDLESS_KINDS = frozenset({"anthropic", "openai_responses"})


# the protocols whose thinking budget caps the reasoning itself: their output cap must leave room
# for the visible answer after it (Anthropic requires max_tokens > budget_tokens)
THINKING_BUDGET_KINDS = frozenset({"anthropic", "gemini", "llamacpp"})
# the batch interface of each kind that has one (providers.md §10): OpenAI's files + batches
# (xAI and Together copy it; the built-in simulator serves it), Anthropic's Message Batches,
# Gemini's batchGenerateContent. A kind not listed has none: `run.mode = "batch"` refuses it.
BATCH_INTERFACES: dict[str, str] = {
    "openai": "openai",
    "openai_responses": "openai",
    "xai": "openai",
    "together": "openai",
    "sim": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
}


def batch_interface(kind: str) -> str | None:
    """The batch protocol of a provider kind (None: it has no batch interface)."""
    return BATCH_INTERFACES.get(kind)


def min_thinking_budget(kind: str) -> int:
    """The smallest thinking budget the provider kind accepts (0: no minimum)."""
    return MIN_THINKING_BUDGET.get(kind, 0)


def sends_thinking_budget(kind: str) -> bool:
    """Whether the provider kind's requests carry the thinking budget to the model."""
    return kind in THINKING_BUDGET_SENT


def continues_trace(kind: str, traced: str, thinking: bool) -> bool:
    """Whether a stored trace of this kind can be continued past its end by the protocol: a
    chain-of-thought trace (cut in the answer text, no thinking) on a kind that documents an
    assistant prefill. Thinking cannot be prefilled on any protocol we speak."""
    return kind in CONTINUES_FROM_PREFILL and traced == "content" and not thinking


def served_by_simulator(provider: Provider) -> bool:
    """A provider the built-in simulator serves: kind "sim", or any kind with a ``sim://`` URL.

    ``kind = "sim"`` with an ``http://`` URL talks to an `anytime sim` already running elsewhere:
    also simulated, but not started by the run.
    """
    return provider.kind == "sim" or (provider.base_url or "").startswith(SIM_SCHEME)


def started_by_run(provider: Provider) -> bool:
    """A provider whose simulator the run starts in its own process (no URL, or ``sim://``)."""
    return (provider.kind == "sim" and not provider.base_url) or (provider.base_url or "").startswith(SIM_SCHEME)


def key_optional(provider: Provider) -> bool:
    """Whether the manifest may leave out ``api_key_env`` (the simulator, keyless local hosts)."""
    return served_by_simulator(provider) or provider.kind in KEYLESS_KINDS


def needs_key(provider: Provider) -> bool:
    """Whether the provider's key variable must be set for a run (and for `doctor`).

    The one rule `anytime run`, `validate` and `doctor` apply (`runner.config.keys`): a simulated
    provider never needs one (the run sends a stand-in); a keyless kind needs one only when the
    manifest names a variable; every other kind always needs one.
    """
    if served_by_simulator(provider):
        return False
    return provider.api_key_env is not None or not key_optional(provider)


class PromptCaching(NamedTuple):
    """How a provider kind caches prompts, as its documentation states (providers.md §10).

    Attributes:
        explicit: only prefixes ending at a ``cache_control`` breakpoint are cached (Anthropic);
            else every long enough prefix is cached automatically.
        minimum: the shortest prefix cached.
        step: hits are counted in whole blocks of this many tokens.
    """

    explicit: bool
    minimum: int
    step: int


# kinds not listed cache nothing we can count (OpenAI-compatible hosts, Together, OpenRouter, llama.cpp)
PROMPT_CACHING: dict[str, PromptCaching] = {
    "openai": PromptCaching(False, 1024, 128),  # >= 1024 tokens, in 128-token increments
    "openai_responses": PromptCaching(False, 1024, 128),
    "sim": PromptCaching(False, 1024, 128),  # the built-in simulator speaks OpenAI's protocol
    "xai": PromptCaching(False, 128, 128),  # automatic; no minimum documented, 128-token blocks
    "deepseek": PromptCaching(False, 64, 64),  # on-disk cache in 64-token units
    "gemini": PromptCaching(False, 1024, 64),  # implicit: >= 1024 tokens on Flash (2048 on Pro)
    "anthropic": PromptCaching(True, 1024, 1),  # breakpoints only; >= 1024 (2048 on Haiku)
}


def prompt_caching(kind: str, model_id: str) -> PromptCaching | None:
    """How prompts of a model on a provider kind are cached (None: not at all, as far as we know)."""
    rule = PROMPT_CACHING.get(kind)
    if rule is None:
        return None
    name = model_id.lower()
    if (kind == "gemini" and "pro" in name) or (kind == "anthropic" and "haiku" in name):
        return rule._replace(minimum=2048)
    return rule
