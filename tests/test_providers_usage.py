"""Usage mapping on each provider's documented example (providers.md), normalised to our fields.

Conventions (runner.events): ``output_tokens`` includes reasoning; ``input_tokens`` includes
cached and cache-write tokens; ``cached_input_tokens`` is the cache-read part.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from runner.ledger import prices as pricing
from runner.ledger.prices import ModelPrice
from runner.providers import anthropic, gemini, openai_chat, openai_responses
from runner.types import Usage

OPENAI_USAGE = (
    b'{"prompt_tokens":1210,"completion_tokens":2,"total_tokens":1212,'
    b'"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)
XAI_USAGE = (
    b'{"prompt_tokens":15,"completion_tokens":1,"total_tokens":156,"prompt_tokens_details":{"cached_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":140},"cost_in_usd_ticks":37756000}'
)
DEEPSEEK_USAGE = (
    b'{"prompt_tokens":500,"completion_tokens":900,"total_tokens":1400,"prompt_cache_hit_tokens":384,'
    b'"prompt_cache_miss_tokens":116,"completion_tokens_details":{"reasoning_tokens":850}}'
)
OPENROUTER_USAGE = (
    b'{"prompt_tokens":40,"completion_tokens":300,"total_tokens":340,"cost":0.0000612,'
    b'"completion_tokens_details":{"reasoning_tokens":250}}'
)
ANTHROPIC_START = (
    b'{"input_tokens":42,"cache_creation_input_tokens":100,"cache_read_input_tokens":2048,"output_tokens":3}'
)
RESPONSES_USAGE = (
    b'{"input_tokens":80,"input_tokens_details":{"cached_tokens":0},"output_tokens":2000,'
    b'"output_tokens_details":{"reasoning_tokens":1994},"total_tokens":2080}'
)
GEMINI_USAGE = b'{"promptTokenCount":12,"candidatesTokenCount":5,"thoughtsTokenCount":188,"totalTokenCount":205}'


def test_openai() -> None:
    assert openai_chat.decode_usage(OPENAI_USAGE) == Usage(
        input_tokens=1210, output_tokens=2, cached_input_tokens=1024, reasoning_tokens=0
    )


def test_xai_completion_tokens_exclude_reasoning() -> None:
    usage = openai_chat.decode_usage(XAI_USAGE, quirk="xai", cost_field=True)
    assert usage == Usage(input_tokens=15, output_tokens=141, reasoning_tokens=140, billed_usd=pytest.approx(0.0037756))
    assert usage.input_tokens + usage.output_tokens == 156  # matches xAI's total_tokens
    # the auto rule reads the same split from total_tokens, so a relay that re-adds it is not doubled
    assert openai_chat.decode_usage(XAI_USAGE, quirk="auto").output_tokens == 141
    assert openai_chat.decode_usage(OPENAI_USAGE, quirk="auto").output_tokens == 2
    relayed = XAI_USAGE.replace(b'"completion_tokens":1,', b'"completion_tokens":141,')
    assert openai_chat.decode_usage(relayed, quirk="auto").output_tokens == 141


def test_deepseek_cache_hit_tokens() -> None:
    usage = openai_chat.decode_usage(DEEPSEEK_USAGE)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (500, 384, 900)
    assert usage.reasoning_tokens == 850


def test_openrouter_cost() -> None:
    usage = openai_chat.decode_usage(OPENROUTER_USAGE, cost_field=True)
    assert usage.billed_usd == pytest.approx(0.0000612)
    assert openai_chat.decode_usage(OPENROUTER_USAGE).billed_usd is None  # only where the host bills


def test_anthropic_cache_fields() -> None:
    assert anthropic.map_usage(ANTHROPIC_START) == Usage(
        input_tokens=42 + 100 + 2048, output_tokens=3, cached_input_tokens=2048, cache_write_input_tokens=100
    )


def test_responses() -> None:
    assert openai_responses.decode_usage(RESPONSES_USAGE) == Usage(
        input_tokens=80, output_tokens=2000, reasoning_tokens=1994
    )


def test_gemini_thoughts_added_to_output() -> None:
    assert gemini.decode_usage(GEMINI_USAGE) == Usage(input_tokens=12, output_tokens=193, reasoning_tokens=188)


# ------------------------------------------------------------------ dollars from the mapped usage

PER_M = 1_000_000


def _price(kind: str, model: str) -> tuple[ModuleType, ModelPrice]:
    price = pricing.PriceTable.load().lookup(kind, model)
    assert price is not None, f"{kind}/{model} missing from runner/ledger/prices.toml"
    return pricing, price


def test_dollars_openai_cached_prompt() -> None:
    pricing, price = _price("openai", "gpt-4.1")
    usage = openai_chat.decode_usage(OPENAI_USAGE)
    # 186 uncached x $2 + 1024 cached x $0.50 + 2 output x $8 per 1M
    assert pricing.usage_cost(price, usage) == pytest.approx((186 * 2.00 + 1024 * 0.50 + 2 * 8.00) / PER_M)


def test_dollars_xai_bill_reasoning_and_prefer_the_billed_charge() -> None:
    pricing, price = _price("xai", "grok-3-mini")
    usage = openai_chat.decode_usage(XAI_USAGE, quirk="xai", cost_field=True)
    # reasoning billed at the output price: 15 x $0.30 + (1 + 140) x $0.50 per 1M
    assert pricing.usage_cost(price, usage) == pytest.approx((15 * 0.30 + 141 * 0.50) / PER_M)
    naive = openai_chat.decode_usage(XAI_USAGE)  # without the quirk the bill is 15x too small
    assert pricing.usage_cost(price, naive) == pytest.approx((15 * 0.30 + 1 * 0.50) / PER_M)
    usd, source = pricing.attempt_cost(price, usage, 15, 141)
    assert (usd, source) == (pytest.approx(0.0037756), "billed")


def test_dollars_deepseek_cache_hits() -> None:
    pricing, price = _price("deepseek", "deepseek-reasoner")
    usage = openai_chat.decode_usage(DEEPSEEK_USAGE)
    assert pricing.usage_cost(price, usage) == pytest.approx((116 * 0.56 + 384 * 0.07 + 900 * 1.68) / PER_M)


def test_dollars_anthropic_cache_reads_and_writes() -> None:
    import msgspec

    pricing, price = _price("anthropic", "claude-sonnet-4-20250514")
    usage = msgspec.structs.replace(anthropic.map_usage(ANTHROPIC_START), output_tokens=611)
    expected = (42 * 3.00 + 2048 * 0.30 + 100 * 3.75 + 611 * 15.00) / PER_M
    assert pricing.usage_cost(price, usage) == pytest.approx(expected)


def test_dollars_gemini_thoughts_at_output_price() -> None:
    pricing, price = _price("gemini", "gemini-2.5-flash")
    usage = gemini.decode_usage(GEMINI_USAGE)
    assert pricing.usage_cost(price, usage) == pytest.approx((12 * 0.30 + (5 + 188) * 2.50) / PER_M)


def test_dollars_responses_reasoning_inside_output() -> None:
    pricing, price = _price("openai_responses", "o4-mini")
    usage = openai_responses.decode_usage(RESPONSES_USAGE)
    assert pricing.usage_cost(price, usage) == pytest.approx((80 * 1.10 + 2000 * 4.40) / PER_M)


def test_dollars_openrouter_billed() -> None:
    pricing, price = _price("openrouter", "openai/gpt-oss-120b")
    usage = openai_chat.decode_usage(OPENROUTER_USAGE, cost_field=True)
    assert pricing.attempt_cost(price, usage, 40, 300) == (pytest.approx(0.0000612), "billed")
