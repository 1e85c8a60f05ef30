"""The price table and the cost of one attempt (vendor usage quirks: tests/test_providers_usage.py)."""

from __future__ import annotations

import re
import tomllib
from importlib import resources

import pytest

from runner.config.manifest import Model, Price
from runner.errors import PriceError
from runner.ledger.prices import ModelPrice, PriceTable, attempt_cost, usage_cost, worst_case_cost
from runner.types import Usage

PER_M = 1_000_000
GPT41 = ModelPrice(input=2.0, cached_input=0.5, output=8.0)

# providers.md §6: every model listed there, by the host kind it is served from
LISTED = [
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("openai", "o4-mini"),
    ("xai", "grok-3"),
    ("xai", "grok-3-mini"),
    ("together", "openai/gpt-oss-120b"),
    ("openrouter", "openai/gpt-oss-120b"),
    ("together", "openai/gpt-oss-20b"),
    ("openrouter", "openai/gpt-oss-20b"),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("deepseek", "deepseek-reasoner"),
    ("gemini", "gemini-2.5-flash"),
    ("gemini", "gemini-2.5-pro"),
]


@pytest.mark.parametrize(("kind", "model"), LISTED)
def test_every_listed_model_has_a_dated_sourced_price(kind: str, model: str) -> None:
    price = PriceTable.load().lookup(kind, model)
    assert price is not None, f"{kind}/{model}"
    assert price.source and re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.checked)
    assert price.input > 0 and price.output > 0


def test_hosts_of_one_model_differ() -> None:
    table = PriceTable.load()
    together = table.lookup("together", "openai/gpt-oss-120b")
    openrouter = table.lookup("openrouter", "openai/gpt-oss-120b")
    assert together is not None and openrouter is not None
    assert (together.input, openrouter.input) == (0.15, 0.039)


def test_every_simulated_model_is_priced_cheap_but_not_free() -> None:
    from anytime_sim.models import BUILTIN_MODELS

    table = PriceTable.load()
    for name in BUILTIN_MODELS:
        price = table.lookup("sim", name)
        assert price is not None, name
        assert 0 < price.input <= 5 and 0 < price.output <= 20
        assert price.source.startswith("simulator")


def test_sim_prices_that_the_simulator_bills_agree_with_the_table() -> None:
    from anytime_sim.models import BUILTIN_MODELS

    table = PriceTable.load()
    for name, model in BUILTIN_MODELS.items():
        if model.price is not None:  # xAI-profile models report their own charge
            price = table.lookup("sim", name)
            assert price is not None
            assert (price.input, price.cached_input, price.output) == model.price


def test_table_file_is_valid_toml_with_known_fields() -> None:
    doc = tomllib.loads(resources.files("runner.ledger").joinpath("prices.toml").read_text())
    for key, entry in doc["models"].items():
        assert "/" in key
        assert set(entry) <= {"input", "cached_input", "cache_write_input", "output", "source", "checked"}


def test_unknown_model_names_the_manifest_field() -> None:
    model = Model(provider="acme", model="mystery-1")
    with pytest.raises(PriceError, match=r"models\.fast\.price: no known price for openai_compatible/mystery-1"):
        PriceTable.load().price_for("fast", model, "openai_compatible")


def test_manifest_price_wins_and_zero_is_allowed() -> None:
    free = Model(provider="local", model="gpt-4.1", price=Price(input=0.0, output=0.0))
    price = PriceTable.load().price_for("local", free, "openai")
    assert (price.input, price.output, price.source) == (0.0, 0.0, "manifest")
    assert attempt_cost(price, Usage(input_tokens=100, output_tokens=100), 100, 100) == (0.0, "reported")


def test_overrides_replace_entries() -> None:
    table = PriceTable.load({"openai/gpt-4.1": ModelPrice(input=1.0, output=1.0, source="test")})
    assert table.lookup("openai", "gpt-4.1") == ModelPrice(input=1.0, output=1.0, source="test")


def test_a_broken_table_is_a_price_error() -> None:
    with pytest.raises(PriceError, match="price table"):
        PriceTable.load(text='[models."a/b"]\ninput = "cheap"\noutput = 1\n')


def test_billed_then_reported_then_counted() -> None:
    billed = Usage(input_tokens=10, output_tokens=10, billed_usd=0.123)
    assert attempt_cost(GPT41, billed, 10, 10) == (0.123, "billed")
    reported = Usage(input_tokens=1210, output_tokens=2, cached_input_tokens=1024)
    usd, source = attempt_cost(GPT41, reported, 999, 999)
    assert source == "reported"
    assert usd == pytest.approx((186 * 2.0 + 1024 * 0.5 + 2 * 8.0) / PER_M)


def test_a_cut_stream_without_usage_is_priced_from_our_count_never_zero() -> None:
    usd, source = attempt_cost(GPT41, None, 500, 4096)
    assert source == "counted"
    assert usd == pytest.approx((500 * 2.0 + 4096 * 8.0) / PER_M)
    assert usd > 0


def test_cached_tokens_without_a_cached_price_pay_the_input_price() -> None:
    plain = ModelPrice(input=0.15, output=0.6)
    usage = Usage(input_tokens=1000, output_tokens=0, cached_input_tokens=800)
    assert usage_cost(plain, usage) == pytest.approx(1000 * 0.15 / PER_M)


def test_cache_writes_at_the_write_price() -> None:
    claude = ModelPrice(input=3.0, cached_input=0.3, cache_write_input=3.75, output=15.0)
    usage = Usage(input_tokens=2190, output_tokens=611, cached_input_tokens=2048, cache_write_input_tokens=100)
    assert usage_cost(claude, usage) == pytest.approx((42 * 3.0 + 2048 * 0.3 + 100 * 3.75 + 611 * 15.0) / PER_M)


def test_worst_case_bounds_every_outcome_of_the_call() -> None:
    worst = worst_case_cost(GPT41, 1000, 512)
    assert worst == pytest.approx((1000 * 2.0 + 512 * 8.0) / PER_M)
    for cached in (0, 500, 1000):
        for out in (0, 100, 512):
            usage = Usage(input_tokens=1000, output_tokens=out, cached_input_tokens=cached)
            assert usage_cost(GPT41, usage) <= worst


def test_worst_case_covers_cache_writes_dearer_than_input() -> None:
    claude = ModelPrice(input=3.0, cached_input=0.3, cache_write_input=3.75, output=15.0)
    written = Usage(input_tokens=1000, output_tokens=100, cache_write_input_tokens=1000)
    assert usage_cost(claude, written) <= worst_case_cost(claude, 1000, 100)
