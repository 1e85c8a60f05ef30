"""Prices and the cost of a call.

Each model's price carries its batch rates too (`batch_rates`): what a request sent through the
provider's batch interface pays, from the kind's ``[batch.<kind>]`` rule in ``prices.toml``
unless the entry states them. A ledger attempt sent in a batch (``batch_key`` set) is priced at
those, by the same formulas.

Three sources can price an attempt, in this order: the provider's own charge (xAI and OpenRouter
report one), the provider's usage record, and our own token count (a stream cut at the last
budget never receives its usage chunk: its tokens are "unknown, estimated from our count", never
zero). Usage is already normalised by the adapters (`runner.events.Usage`: output includes
reasoning), so one formula serves every vendor.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Literal

import msgspec

from runner.config.manifest import LoadedManifest, Model
from runner.errors import PriceError
from runner.ledger.records import PricedFrom
from runner.types import PromptUsage, Usage

PER = 1_000_000
# host kinds billed by the same price list as another kind (one vendor, two protocols)
_SAME_PRICES = {"openai_responses": "openai"}


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """USD per 1M tokens. Missing cached prices bill cached tokens at the input price.

    ``batch_*``: the same rates for a request sent in a batch (None: no batch interface known).
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write_input: float | None = None
    source: str = ""
    checked: str = ""
    batch_input: float | None = None
    batch_output: float | None = None
    batch_cached_input: float | None = None
    batch_cache_write_input: float | None = None
    batch_source: str = ""


class BatchRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A provider kind's batch discount (``[batch.<kind>]`` in ``prices.toml``).

    Attributes:
        discount: the fraction of the price a batch request pays (0.5: half price).
        cache: "stacks": cache reads and writes are billed at their rates times ``discount``;
            "input": no prompt caching is documented for batches (a cached token is billed at the
            batch input rate).
    """

    discount: float
    cache: Literal["stacks", "input"] = "stacks"
    source: str = ""
    checked: str = ""


def with_batch(price: ModelPrice, rule: BatchRule | None) -> ModelPrice:
    """``price`` with its batch rates filled in from ``rule`` where it does not state them."""
    if rule is None or price.batch_input is not None:
        return price
    d = rule.discount
    batch_input = price.input * d

    def cached(rate: float | None) -> float | None:
        if rate is None:
            return None
        return rate * d if rule.cache == "stacks" else batch_input

    return msgspec.structs.replace(
        price,
        batch_input=batch_input,
        batch_output=price.output * d if price.batch_output is None else price.batch_output,
        batch_cached_input=_either(price.batch_cached_input, cached(price.cached_input)),
        batch_cache_write_input=_either(price.batch_cache_write_input, cached(price.cache_write_input)),
        batch_source=rule.source,
    )


def _either(stated: float | None, derived: float | None) -> float | None:
    return stated if stated is not None else derived


def batch_rates(price: ModelPrice) -> ModelPrice | None:
    """The price a batch request pays, as a plain price (None: no batch rates known)."""
    if price.batch_input is None or price.batch_output is None:
        return None
    return ModelPrice(
        input=price.batch_input,
        output=price.batch_output,
        cached_input=price.batch_cached_input,
        cache_write_input=price.batch_cache_write_input,
        source=f"{price.source} (batch: {price.batch_source})" if price.batch_source else price.source,
        checked=price.checked,
    )


class PriceTable:
    """The dated table of `runner/prices.toml`, with manifest prices taking precedence."""

    def __init__(self, entries: dict[str, ModelPrice], batch: dict[str, BatchRule] | None = None) -> None:
        self.entries = entries
        self.batch = batch or {}

    @classmethod
    def load(cls, overrides: dict[str, ModelPrice] | None = None, *, text: str | None = None) -> PriceTable:
        """The packaged table (or ``text``), with ``overrides`` keyed like the table replacing entries.

        Raises:
            PriceError: the table is not valid TOML or an entry has a wrong field.
        """
        raw = text if text is not None else resources.files("runner.ledger").joinpath("prices.toml").read_text()
        try:
            doc = tomllib.loads(raw)
            entries = {key: msgspec.convert(value, ModelPrice) for key, value in doc.get("models", {}).items()}
            batch = {kind: msgspec.convert(value, BatchRule) for kind, value in doc.get("batch", {}).items()}
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise PriceError(f"price table: {exc}") from None
        entries.update(overrides or {})
        return cls(entries, batch)

    def lookup(self, provider_kind: str, model_id: str) -> ModelPrice | None:
        """The entry for a model on a host kind; `*/<model>` entries match any host."""
        for kind in (provider_kind, _SAME_PRICES.get(provider_kind)):
            if kind is not None and (found := self.entries.get(f"{kind}/{model_id}")) is not None:
                return found
        return self.entries.get(f"*/{model_id}")

    def price_for(self, model_key: str, model: Model, provider_kind: str, source: str = "") -> ModelPrice:
        """The manifest's price, else the table's; unknown models stop the run before any call.

        Raises:
            PriceError: no price is known; names ``source`` (the manifest file) and ``models.<key>.price``.
        """
        rule = self.batch.get(provider_kind)
        if model.price is not None:
            p = model.price
            stated = ModelPrice(
                input=p.input,
                output=p.output,
                cached_input=p.cached_input,
                cache_write_input=p.cache_write_input,
                source="manifest",
                batch_input=p.batch_input,
                batch_output=p.batch_output,
                batch_cached_input=p.batch_cached_input,
                batch_cache_write_input=p.batch_cache_write_input,
            )
            return with_batch(stated, rule)
        found = self.lookup(provider_kind, model.model)
        if found is None:
            where = f"{source}: " if source else ""
            raise PriceError(
                f"{where}models.{model_key}.price: no known price for {provider_kind}/{model.model}; set "
                f"`price = {{ input = ..., output = ... }}` (USD per 1M tokens; 0 is allowed) in the manifest"
            )
        return with_batch(found, rule)

    @staticmethod
    def describe(price: ModelPrice) -> dict[str, object]:
        """Plain data for the run header (what `anytime ledger verify` recomputes with)."""
        described: dict[str, object] = msgspec.to_builtins(price)  # a Struct becomes a dict
        return described


def manifest_prices(loaded: LoadedManifest, table: PriceTable) -> dict[str, ModelPrice]:
    """Every selected model's price; an unknown one stops the command before any call.

    Raises:
        PriceError: names the manifest file, ``models.<key>.price`` and how to set it.
    """
    m = loaded.manifest
    return {
        key: table.price_for(key, m.models[key], m.providers[m.models[key].provider].kind, loaded.path.name)
        for key in loaded.selected("models")
    }


def attempt_cost(
    price: ModelPrice,
    reported: Usage | None,
    counted_input: int,
    counted_output: int,
    prompt: PromptUsage | None = None,
) -> tuple[float, PricedFrom]:
    """Dollars for one attempt and which numbers priced it ("billed", "reported", "mixed",
    "counted"). "mixed": the provider stated the prompt side (``prompt``, cache reads and writes
    included) but the stream was cut before its final usage: output from our count."""
    if reported is not None and reported.billed_usd is not None:
        return reported.billed_usd, "billed"
    if reported is not None:
        return usage_cost(price, reported), "reported"
    if prompt is not None:
        return mixed_cost(price, prompt, counted_output), "mixed"
    return (counted_input * price.input + counted_output * price.output) / PER, "counted"


def mixed_cost(price: ModelPrice, prompt: PromptUsage, counted_output: int) -> float:
    """Dollars for a prompt the provider stated and an output we counted."""
    usage = Usage(
        input_tokens=prompt.input_tokens,
        output_tokens=counted_output,
        cached_input_tokens=prompt.cached_input_tokens,
        cache_write_input_tokens=prompt.cache_write_input_tokens,
    )
    return usage_cost(price, usage)


def usage_cost(price: ModelPrice, usage: Usage) -> float:
    """Dollars for normalised usage: cache reads and writes at their prices, reasoning as output."""
    cached = usage.cached_input_tokens
    written = usage.cache_write_input_tokens
    uncached = max(0, usage.input_tokens - cached - written)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    write_price = price.cache_write_input if price.cache_write_input is not None else price.input
    return (
        uncached * price.input + cached * cached_price + written * write_price + usage.output_tokens * price.output
    ) / PER


def reuse_usd(
    price: ModelPrice, input_tokens: int, output_tokens: int, resent_tokens: int = 0, paid: float | None = None
) -> float:
    """Dollars a reused call did not cost (`runner.ledger.records.Reuse`): the prompt it did not send
    and the output it did not have generated, less what a continuation sent again as its prefill,
    at the uncached rates; never more than the stored call cost where it was ``paid`` (its prompt
    may have been read from a cache there, and it may have run past what this run needed)."""
    usd = max(((input_tokens - resent_tokens) * price.input + output_tokens * price.output) / PER, 0.0)
    return usd if paid is None else min(usd, paid)


def worst_case_cost(price: ModelPrice, prompt_tokens: int, max_output_tokens: int) -> float:
    """The most a call can cost: its whole prompt at the dearer of the input and cache-write
    prices (Anthropic bills writes above plain input) and its whole output cap."""
    prompt_price = max(price.input, price.cache_write_input or 0.0)
    return (prompt_tokens * prompt_price + max_output_tokens * price.output) / PER
