"""The simulator's per-key RPM/TPM buckets: 429s, their headers and bodies, refunds, per-key isolation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from test_sim_support import aime_statement, write_datasets

from anytime_sim import SimConfig, open_simulator
from anytime_sim.ratelimit import Bucket, RateLimiter, go_duration


class FakeClock:
    """The limiter's clock, moved by hand so that refill never depends on wall time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def datasets(tmp_path: Path):
    return write_datasets(tmp_path / "data")


def chat(model: str = "sim-cot-small", cap: int = 100, **extra) -> dict:
    return {
        "model": model,
        "messages": [{"role": "user", "content": aime_statement(0)}],
        "max_tokens": cap,
        **extra,
    }


async def post(session, url: str, body: dict, key: str = "key-a") -> aiohttp.ClientResponse:
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        await response.read()
        return response


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.12, "120ms"),
        (0.0, "0ms"),
        (1.52, "1.52s"),
        (6.0, "6s"),
        (360.0, "6m0s"),
        (179.5, "2m59.5s"),
        (3723.0, "1h2m3s"),
    ],
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_bucket_refills_linearly_and_waits() -> None:
    bucket = Bucket(60, now=0.0)
    bucket.level = 0.0
    assert bucket.wait_s(3) == pytest.approx(3.0)
    bucket.refill(1.5)
    assert bucket.level == pytest.approx(1.5) and bucket.reset_s() == pytest.approx(58.5)
    assert bucket.wait_s(61) == float("inf")


def test_admission_charges_prompt_plus_cap_and_refunds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=1000, clock=clock)
    assert limiter.admit("k", 700).ok
    rejected = limiter.admit("k", 400)
    assert not rejected.ok and rejected.reason == "tokens" and rejected.retry_after_s == pytest.approx(6.0)
    limiter.refund("k", 300)  # the first call used 400 of its 700
    assert limiter.admit("k", 400).ok
    assert limiter.admit("other", 1000).ok  # buckets are per key
    assert limiter.admit("k", 5000).reason == "too_large"


def test_a_one_second_window_admits_a_seconds_share_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, tpm=None, clock=clock, window_s=1.0)
    assert all(limiter.admit("k", 0).ok for _ in range(10))  # 600/min is 10 a second
    refused = limiter.admit("k", 0)
    assert not refused.ok and refused.reason == "requests" and refused.retry_after_s == pytest.approx(0.1)
    # the headers speak of the minute, as a provider's do: they cannot tell the window
    assert refused.state.limit_requests == 600 and refused.state.remaining_requests == 590
    assert refused.state.reset_requests_s == pytest.approx(1.0)
    clock.now += 0.1  # the per-minute rate refills one request
    assert limiter.admit("k", 0).ok and not limiter.admit("k", 0).ok
    clock.now += 60.0  # a quiet minute refills one window, not one minute
    assert sum(limiter.admit("k", 0).ok for _ in range(20)) == 10


def test_a_request_larger_than_a_windows_share_waits_for_a_full_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock, window_s=1.0)  # 100 tokens a second
    assert limiter.admit("k", 250).ok  # a full window takes it, and owes 150 beyond its share
    refused = limiter.admit("k", 1)
    assert not refused.ok and refused.retry_after_s == pytest.approx(1.51)
    assert refused.state.remaining_tokens == 5750
    clock.now += 1.49
    assert not limiter.admit("k", 250).ok  # not full yet
    clock.now += 1.01
    assert limiter.admit("k", 250).ok
    assert limiter.admit("other", 6001).reason == "too_large"  # over the minute's limit: never


def test_the_window_is_an_option_of_the_simulator_and_its_manifest_table() -> None:
    assert SimConfig.from_table({"rpm": 60, "limit_window_s": 1.0}).limit_window_s == 1.0
    assert SimConfig().limit_window_s == 60.0  # by default a whole minute's limit may go at once
    with pytest.raises(ValueError, match="limit_window_s"):
        SimConfig(limit_window_s=0.0)


async def test_rpm_429_with_openai_headers_and_body(datasets) -> None:
    clock = FakeClock()
    async with open_simulator(SimConfig(time_scale=0, rpm=2, tpm=100_000), datasets, clock=clock) as sim:
        url = sim.base_url + "/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            first = await post(session, url, chat())
            assert first.status == 200
            assert first.headers["x-ratelimit-limit-requests"] == "2"
            assert first.headers["x-ratelimit-remaining-requests"] == "1"
            assert first.headers["x-ratelimit-reset-requests"] == "30s"
            assert first.headers["x-ratelimit-limit-tokens"] == "100000"
            assert (await post(session, url, chat())).status == 200
            async with session.post(url, json=chat(), headers={"Authorization": "Bearer key-a"}) as third:
                body = await third.json()
                assert third.status == 429
                assert third.headers["retry-after"] == "30" and third.headers["retry-after-ms"] == "30000"
                assert third.headers["x-ratelimit-remaining-requests"] == "0"
            assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "requests"
            assert "RPM" in body["error"]["message"] and "key-a" not in body["error"]["message"]
            # another key has its own buckets
            assert (await post(session, url, chat(), key="key-b")).status == 200
            clock.now += 30.0  # one request's worth of refill
            assert (await post(session, url, chat())).status == 200
        assert sim.stats().models["sim-cot-small"].rate_limited == 1


async def test_tpm_429_and_refund_of_the_unused_cap(datasets) -> None:
    clock = FakeClock()
    async with open_simulator(SimConfig(time_scale=0, tpm=2000), datasets, clock=clock) as sim:
        url = sim.base_url + "/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            # a short answer under a large cap: the unused part of the cap comes back
            forced = {
                **chat(cap=1500),
                "messages": [
                    {
                        "role": "user",
                        "content": "<reasoning_so_far> So the current answer is 5.</reasoning_so_far>",
                    }
                ],
            }
            ok = await post(session, url, forced)
            assert ok.status == 200 and int(ok.headers["x-ratelimit-remaining-tokens"]) < 500
            await sim.wait_idle()
            again = await post(session, url, forced)
            assert again.status == 200  # would be a 429 without the refund
            assert (await post(session, url, chat(cap=1880))).status == 200  # spends about 1,300 tokens
            await sim.wait_idle()
            async with session.post(url, json=chat(cap=1900), headers={"Authorization": "Bearer key-a"}) as r:
                body = await r.json()
                assert r.status == 429 and body["error"]["type"] == "tokens"
                assert float(r.headers["retry-after-ms"]) > 0
                assert re.fullmatch(r"(\d+m)?\d+(\.\d+)?s|\d+ms", r.headers["x-ratelimit-reset-tokens"])
            async with session.post(url, json=chat(cap=5000), headers={"Authorization": "Bearer key-a"}) as r:
                assert r.status == 429 and r.headers["x-should-retry"] == "false"


async def test_openai_sdk_sees_rate_limit_error(datasets) -> None:
    async with open_simulator(SimConfig(time_scale=0, rpm=1), datasets) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="sdk-key", max_retries=0)
        await client.chat.completions.create(**chat())
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(**chat())
        assert info.value.response.headers["retry-after"] == "60"
        await client.close()


async def test_anthropic_headers_and_429(datasets) -> None:
    async with open_simulator(SimConfig(time_scale=0, rpm=1, tpm=50_000), datasets) as sim:
        client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="a-key", max_retries=0)
        raw = await client.messages.with_raw_response.create(
            model="sim-claude-plain", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        headers = raw.headers
        assert headers["anthropic-ratelimit-requests-limit"] == "1"
        assert headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert headers["anthropic-ratelimit-tokens-limit"] == "50000"
        reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
        assert reset.tzinfo == UTC and headers["anthropic-ratelimit-output-tokens-reset"].endswith("Z")
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(
                model="sim-claude-plain", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.body["error"]["type"] == "rate_limit_error"
        assert int(info.value.response.headers["retry-after"]) >= 1
        await client.close()


async def test_gemini_429_body(datasets) -> None:
    async with (
        open_simulator(SimConfig(time_scale=0, rpm=1), datasets) as sim,
        aiohttp.ClientSession() as session,
    ):
        url = sim.base_url + "/v1beta/models/sim-gemini-2.5-flash:streamGenerateContent?alt=sse&key=g"
        body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 10}}
        assert (await post(session, url, body)).status == 200
        async with session.post(url, json=body) as r:
            error = (await r.json())["error"]
            assert r.status == 429 and error["status"] == "RESOURCE_EXHAUSTED" and "retry-after" in r.headers
