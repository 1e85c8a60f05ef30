"""Manifest provider kinds → adapters.

Each kind names its protocol's adapter class, the host's options and its default base URL. A new
OpenAI-compatible host is usually one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from runner.errors import ConfigError
from runner.providers.anthropic import AnthropicAdapter
from runner.providers.anthropic_batch import AnthropicBatchClient
from runner.providers.base import Adapter
from runner.providers.batch import BatchClient
from runner.providers.gemini import GeminiAdapter
from runner.providers.gemini_batch import GeminiBatchClient
from runner.providers.openai_batch import OpenAIBatchClient
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.providers.openai_responses import OpenAIResponsesAdapter
from runner.providers.streaming import SSEAdapter


class Provider(Protocol):
    """What an adapter is built from (a manifest ``[providers.*]`` table satisfies it): values,
    never the manifest itself."""

    @property
    def kind(self) -> str: ...

    @property
    def reasoning_field(self) -> str | None: ...


class KindSpec:
    """How to build the adapter of one provider kind."""

    __slots__ = ("adapter", "base_url", "options")

    def __init__(self, adapter: type[Adapter], base_url: str | None, **options: object) -> None:
        self.adapter = adapter
        self.base_url = base_url
        self.options: dict[str, object] = options


KINDS: dict[str, KindSpec] = {
    # the simulator speaks every OpenAI-compatible variant; accept both reasoning fields and its cost
    "sim": KindSpec(
        OpenAIChatAdapter,
        None,
        cost_field=True,
        token_param="max_completion_tokens",
        think_tags=True,
        usage_quirk="auto",
    ),
    "openai": KindSpec(OpenAIChatAdapter, "https://api.openai.com/v1", token_param="max_completion_tokens"),
    "xai": KindSpec(
        OpenAIChatAdapter,
        "https://api.x.ai/v1",
        reasoning_field="reasoning_content",
        usage_quirk="xai",
        cost_field=True,
        token_param="max_completion_tokens",
    ),
    "deepseek": KindSpec(
        OpenAIChatAdapter,
        "https://api.deepseek.com/v1",
        reasoning_field="reasoning_content",
        token_param="max_tokens",
    ),
    "openai_compatible": KindSpec(
        OpenAIChatAdapter, None, token_param="max_tokens", think_tags=True, usage_quirk="auto"
    ),
    "openrouter": KindSpec(
        OpenAIChatAdapter,
        "https://openrouter.ai/api/v1",
        reasoning_field="reasoning",
        cost_field=True,
        token_param="max_tokens",
        effort_param="reasoning",
        extra_body={"usage": {"include": True}},
    ),
    "together": KindSpec(
        OpenAIChatAdapter,
        "https://api.together.xyz/v1",
        reasoning_field="think_tags",
        token_param="max_tokens",
        batch_purpose="batch-api",  # Together's files API names batch input files so
    ),
    "llamacpp": KindSpec(
        OpenAIChatAdapter,
        "http://127.0.0.1:8080/v1",
        token_param="max_tokens",
        think_tags=True,
        budget_param="reasoning_budget_tokens",
    ),
    "openai_responses": KindSpec(OpenAIResponsesAdapter, "https://api.openai.com/v1"),
    "anthropic": KindSpec(AnthropicAdapter, "https://api.anthropic.com/v1"),
    "gemini": KindSpec(GeminiAdapter, "https://generativelanguage.googleapis.com/v1beta"),
}


def default_base_url(kind: str) -> str | None:
    """The public endpoint of a provider kind (None for ``sim`` and ``openai_compatible``)."""
    return _spec(kind).base_url


def adapter_options(kind: str, provider: Provider | None = None) -> dict[str, object]:
    """The options a kind's adapter is built with, the manifest's ``reasoning_field`` applied."""
    options = dict(_spec(kind).options)
    if provider is not None and provider.reasoning_field is not None:
        options["reasoning_field"] = provider.reasoning_field
    return options


def make_adapter(
    name: str,
    provider: Provider,
    base_url: str,
    api_key: str | None,
    *,
    options: Mapping[str, object] | None = None,
) -> Adapter:
    """Build the adapter for a manifest provider.

    Args:
        name: the lane name (``providers.<name>``), used in errors.
        provider: the manifest entry; its ``kind`` picks the protocol and host options.
        base_url: the resolved endpoint (the manifest's, else `default_base_url`, else the sim's).
        api_key: the key, or None for keyless hosts.
        options: overrides merged over the kind's defaults (tests, experiments).

    Raises:
        ConfigError: unknown kind.
    """
    spec = _spec(provider.kind)
    merged = adapter_options(provider.kind, provider)
    merged.update(options or {})
    return spec.adapter(base_url, api_key, provider=name, options=merged)


# batch interfaces by name (`runner.config.kinds.batch_interface` says which kind has which)
BATCH_CLIENTS: dict[str, type[BatchClient]] = {
    "openai": OpenAIBatchClient,
    "anthropic": AnthropicBatchClient,
    "gemini": GeminiBatchClient,
}


def make_batch_client(interface: str, adapter: Adapter) -> BatchClient:
    """The batch client of ``interface`` over a lane's adapter (whose requests it carries).

    Raises:
        ConfigError: no such interface, or the adapter is not one a batch can carry.
    """
    client = BATCH_CLIENTS.get(interface)
    if client is None or not isinstance(adapter, SSEAdapter):
        raise ConfigError(f"providers.{adapter.provider}: no batch interface {interface!r} for this protocol")
    return client(adapter)


def _spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ConfigError(f"unknown provider kind {kind!r} (known: {known})") from None
