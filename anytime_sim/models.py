"""The simulated models and the simulator's configuration.

A simulated model differs from another only in skill, speed, trace length and wire quirks
(``profile``); none of them knows or cares which prompting method built a prompt.

Profiles (the OpenAI-compatible quirks each one reproduces, ``providers.md`` §1 and §3):

- ``openai``: reasoning, if any, in ``delta.reasoning_content``; ``completion_tokens`` includes it.
- ``xai``: ``delta.reasoning_content``; ``completion_tokens`` *excludes* reasoning tokens.
- ``deepseek``: ``delta.reasoning_content``; ``prompt_cache_hit_tokens`` / ``_miss_tokens`` in usage.
- ``vllm``: ``delta.reasoning``; no reasoning-token detail; no rate-limit headers.
- ``together``: reasoning inline in ``delta.content`` between ``<think>`` and ``</think>``.
- ``llamacpp``: content only, no usage chunk, no rate-limit headers.
- ``anthropic``: native dialect ``/v1/messages``; streams a *summary* of its thinking.
- ``gemini``: native dialect ``streamGenerateContent``; thought parts.
- ``openai_hidden``: o-series: reasoning never streamed, only counted in usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from anytime_sim.faults import FaultRates

# what a batch request costs against the same request streamed: every provider here documents 50%
BATCH_PRICE_FACTOR = 0.5

Profile = Literal["openai", "xai", "deepseek", "vllm", "together", "llamacpp", "anthropic", "gemini", "openai_hidden"]
PROFILES: tuple[str, ...] = (
    "openai",
    "xai",
    "deepseek",
    "vllm",
    "together",
    "llamacpp",
    "anthropic",
    "gemini",
    "openai_hidden",
)


class SimModel(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated model.

    Attributes:
        name: the model id clients send.
        skill: 0..1; sets how high and how fast the chance of a right candidate answer rises.
        tokens_per_s: generation speed at ``time_scale`` 1.
        ttft_s: time to the first token at ``time_scale`` 1.
        reasoning: whether the model reasons separately from its answer.
        profile: the wire quirks (see module docstring).
        natural_tokens: typical length of an untruncated trace.
        context_window: a prompt this long is refused (``context_length_exceeded``).
        price: USD per 1M tokens (input, cached input, output) for profiles that report the
            charge themselves (xAI's ``cost_in_usd_ticks``); None elsewhere.
    """

    name: str
    skill: float
    tokens_per_s: float
    ttft_s: float
    reasoning: bool
    profile: Profile
    natural_tokens: int
    price: tuple[float, float, float] | None = None
    context_window: int = 128_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.skill <= 1.0:
            raise ValueError(f"SimModel {self.name}: skill must be in [0, 1], got {self.skill}")
        if self.tokens_per_s <= 0 or self.ttft_s < 0 or self.natural_tokens <= 0:
            raise ValueError(f"SimModel {self.name}: speeds and natural_tokens must be positive")


def _m(
    name: str,
    skill: float,
    tps: float,
    ttft: float,
    reasoning: bool,
    profile: Profile,
    natural: int,
    price: tuple[float, float, float] | None = None,
    context_window: int = 128_000,
) -> SimModel:
    return SimModel(
        name=name,
        skill=skill,
        tokens_per_s=tps,
        ttft_s=ttft,
        reasoning=reasoning,
        profile=profile,
        natural_tokens=natural,
        price=price,
        context_window=context_window,
    )


BUILTIN_MODELS: dict[str, SimModel] = {
    m.name: m
    for m in (
        # the demo pair: a strong reasoning model and a weaker chain-of-thought model
        _m("sim-reasoner-large", 0.9, 600.0, 0.2, True, "openai", 3000),
        _m("sim-cot-small", 0.45, 900.0, 0.1, False, "openai", 1200),
        # one per profile, named after the models the paper used
        _m("sim-gpt-4.1", 0.6, 700.0, 0.2, False, "openai", 1000),
        _m("sim-gpt-4o", 0.55, 700.0, 0.2, False, "openai", 900),
        _m("sim-grok-3-mini", 0.85, 500.0, 0.3, True, "xai", 2600, (0.30, 0.075, 0.50)),
        _m("sim-grok-3", 0.6, 400.0, 0.3, False, "xai", 1100, (3.00, 0.75, 15.00)),
        _m("sim-deepseek-reasoner", 0.8, 300.0, 0.5, True, "deepseek", 3500),
        _m("sim-gpt-oss-120b", 0.8, 800.0, 0.2, True, "vllm", 2400),
        _m("sim-gpt-oss-20b", 0.65, 1000.0, 0.1, True, "vllm", 2200),
        _m("sim-deepseek-r1-together", 0.8, 300.0, 0.4, True, "together", 3200),
        _m("sim-llama-3.3-70b", 0.4, 600.0, 0.2, False, "together", 900),
        _m("sim-smollm2", 0.1, 1500.0, 0.05, False, "llamacpp", 600, context_window=4096),
        _m("sim-claude-sonnet-4", 0.85, 400.0, 0.4, True, "anthropic", 2800),
        _m("sim-claude-plain", 0.6, 400.0, 0.4, False, "anthropic", 900),
        _m("sim-gemini-2.5-flash", 0.75, 900.0, 0.3, True, "gemini", 2000),
        _m("sim-o4-mini", 0.85, 500.0, 0.3, True, "openai_hidden", 2500),
    )
}


class SimConfig(msgspec.Struct, kw_only=True):
    """How the simulator behaves.

    Attributes:
        rpm / tpm: per-key limits (None: unlimited). TPM admission counts prompt tokens plus the
            request's output cap; the unused part of the cap is refunded when the call ends.
        limit_window_s: the window over which the per-minute limits are enforced, in (0, 60]
            seconds. 60 lets a whole minute's limit go at once; 1 admits at most a second's share
            (``limit / 60``) at once, as OpenAI documents it may (`anytime_sim.ratelimit`).
        time_scale: 1.0 is real speed; 0 means no delays at all (tests).
        chunk_tokens: tokens per streamed chunk.
        faults: fault rates (manifest ``[simulator.faults]``).
        models: the served models by id.
        error_in_stream: rate of an error event sent inside an otherwise healthy stream.
        modes: transport/fault modes applied to every request (same names as ``x-sim-mode``).
        max_body_bytes: largest accepted request body.
        keepalive_s: how often a silent stream gets a keep-alive (DeepSeek's ``: keep-alive``
            comments, Anthropic's ``ping`` events, and any stream in ``comments`` mode).
        batch_queue_s: seconds a submitted batch waits before its requests run (at ``time_scale``
            1; providers take minutes to hours).
        batch_window_s: a batch's completion window (24 h, as every provider documents it):
            requests still waiting when it runs out expire.
        batch_concurrency: requests of one batch processed at once.
    """

    rpm: int | None = None
    tpm: int | None = None
    limit_window_s: float = 60.0
    time_scale: float = 1.0
    chunk_tokens: int = 4
    faults: FaultRates = msgspec.field(default_factory=FaultRates)
    models: dict[str, SimModel] = msgspec.field(default_factory=lambda: dict(BUILTIN_MODELS))
    error_in_stream: float = 0.0
    modes: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024 * 1024
    # while a stream is silent (hidden thinking, a slow first token), hosts that keep connections
    # alive write a keep-alive this often (seconds of real time; None: never)
    keepalive_s: float | None = 5.0
    batch_queue_s: float = 120.0
    batch_window_s: float = 86_400.0
    batch_concurrency: int = 32

    def __post_init__(self) -> None:
        if self.chunk_tokens <= 0:
            raise ValueError(f"SimConfig.chunk_tokens must be positive, got {self.chunk_tokens}")
        if self.time_scale < 0:
            raise ValueError(f"SimConfig.time_scale must be >= 0, got {self.time_scale}")
        if not 0 < self.limit_window_s <= 60:
            raise ValueError(f"SimConfig.limit_window_s must be in (0, 60] seconds, got {self.limit_window_s}")

    @classmethod
    def from_table(cls, table: Mapping[str, object]) -> SimConfig:
        """Build a config from a manifest's ``[simulator]`` table as plain data.

        Raises:
            msgspec.ValidationError: a field is unknown or has the wrong type.
        """
        known = {"rpm", "tpm", "limit_window_s", "time_scale", "chunk_tokens", "faults"}
        return msgspec.convert({k: v for k, v in table.items() if k in known}, cls)
