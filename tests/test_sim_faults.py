"""Injected faults and transport modes: each one on the wire, seen by raw readers and the official SDKs."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from test_sim_support import aime_statement, sse_events, write_datasets

from anytime_sim import SimConfig, open_simulator
from anytime_sim.faults import FaultRates, parse_modes, plan_fault
from anytime_sim.ratelimit import key_digest

KEY_HEADER = {"Authorization": "Bearer test-key"}  # every vendor API wants a key (the simulator: any)

CHAT = "/v1/chat/completions"


@pytest.fixture
def datasets(tmp_path: Path):
    return write_datasets(tmp_path / "data")


@pytest.fixture
async def sim(datasets):
    async with open_simulator(SimConfig(time_scale=0, chunk_tokens=4), datasets) as s:
        yield s


def body(model: str = "sim-reasoner-large", cap: int = 400, **extra) -> dict:
    messages = [{"role": "user", "content": aime_statement(3)}]
    return {"model": model, "messages": messages, "max_completion_tokens": cap, "stream": True, **extra}


async def send(sim, mode: str, payload: dict | None = None, path: str = CHAT) -> tuple[int, dict, bytes]:
    headers = {"Authorization": "Bearer k", "x-api-key": "k", "x-sim-mode": mode}
    async with aiohttp.ClientSession(headers=KEY_HEADER) as session:
        async with session.post(sim.base_url + path, json=payload or body(), headers=headers) as r:
            return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize(
    ("mode", "statuses", "should_retry"),
    [
        ("error_5xx", {500, 502, 503}, {None, "true"}),
        ("error_5xx_noretry", {500}, {"false"}),
        ("overloaded", {503}, {None}),
        ("rate_limit", {429}, {None}),
    ],
)
async def test_errors_before_the_stream(sim, mode, statuses, should_retry) -> None:
    status, headers, raw = await send(sim, mode)
    assert status in statuses and headers.get("x-should-retry") in should_retry
    error = json.loads(raw)["error"]
    assert error["message"] and "type" in error
    stats = sim.stats().models["sim-reasoner-large"]
    assert stats.input_tokens == 0 and stats.output_tokens == 0  # nothing billed


async def test_anthropic_overloaded_is_529_before_and_an_error_event_inside(sim) -> None:
    payload = {
        "model": "sim-claude-plain",
        "max_tokens": 300,
        "stream": True,
        "messages": [{"role": "user", "content": aime_statement(2)}],
    }
    status, _, raw = await send(sim, "overloaded", payload, "/v1/messages")
    assert status == 529 and json.loads(raw)["error"]["type"] == "overloaded_error"
    client = anthropic.AsyncAnthropic(
        base_url=sim.base_url, api_key="k", max_retries=0, default_headers={"x-sim-mode": "error_in_stream"}
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(**{k: v for k, v in payload.items() if k != "stream"}) as stream:
            async for _ in stream:
                pass
    assert "Overloaded" in str(info.value)
    await client.close()


async def test_drop_mid_stream_cuts_the_body_and_counts_what_was_sent(sim) -> None:
    async with aiohttp.ClientSession(headers=KEY_HEADER) as session:
        headers = {"x-sim-mode": "drop"}
        async with session.post(sim.base_url + CHAT, json=body(cap=2000), headers=headers) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
    await sim.wait_idle()
    stats = sim.stats().models["sim-reasoner-large"]
    assert stats.faults == {"drop": 1} and stats.disconnected == 1 and 0 < stats.output_tokens < 2000


async def test_malformed_chunk_and_error_event(sim) -> None:
    status, _, raw = await send(sim, "malformed")
    events = sse_events(raw)
    assert status == 200 and events[-1][1] != "[DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[-1][1])
    status, _, raw = await send(sim, "error_in_stream")
    last = json.loads(sse_events(raw)[-1][1])
    assert status == 200 and last["error"]["type"] == "server_error"
    client = openai.AsyncOpenAI(
        base_url=sim.base_url + "/v1",
        api_key="k",
        max_retries=0,
        default_headers={"x-sim-mode": "error_in_stream"},
    )
    stream = await client.chat.completions.create(**body())
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    await client.close()


async def test_stall_mid_stream_trips_an_idle_timeout(datasets) -> None:
    config = SimConfig(time_scale=0, faults=FaultRates(stall=1.0, stall_seconds=600.0))
    async with open_simulator(config, datasets) as sim:
        timeout = aiohttp.ClientTimeout(sock_read=0.2)
        async with aiohttp.ClientSession(timeout=timeout, headers=KEY_HEADER) as session:
            async with session.post(sim.base_url + CHAT, json=body()) as r:
                assert r.status == 200
                with pytest.raises(asyncio.TimeoutError):
                    await r.read()
        await sim.wait_idle()  # the handler was cancelled when the client left
        stats = sim.stats().models["sim-reasoner-large"]
        assert stats.faults == {"stall": 1} and stats.disconnected == 1


async def test_stall_before_the_status_line(sim) -> None:
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout, headers=KEY_HEADER) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(sim.base_url + CHAT, json=body(), headers={"x-sim-mode": "stall_first"}):
                pass


def test_faults_are_deterministic_per_request_and_attempt() -> None:
    rates = FaultRates(error_5xx=0.3, drop_mid_stream=0.2, malformed_chunk=0.1, stall=0.1)
    runs = [[plan_fault(rates, 0.1, frozenset(), "req-1", attempt).kind for attempt in range(200)] for _ in range(2)]
    assert runs[0] == runs[1]
    counts = {kind: runs[0].count(kind) for kind in set(runs[0])}
    assert set(counts) == {"", "error_5xx", "drop", "malformed", "stall", "error_in_stream"}
    assert 30 < counts["error_5xx"] < 90 and 20 < counts[""] < 65
    assert plan_fault(rates, 0.0, frozenset({"drop"}), "req-1", 0).kind == "drop"
    with pytest.raises(ValueError, match="unknown x-sim-mode nope"):
        parse_modes("crlf, nope")


async def test_fault_rates_follow_the_attempt_number(datasets) -> None:
    config = SimConfig(time_scale=0, faults=FaultRates(error_5xx=0.5))
    seen: list[list[int]] = []
    for _ in range(2):
        async with open_simulator(config, datasets) as sim, aiohttp.ClientSession(headers=KEY_HEADER) as session:
            statuses = []
            for _attempt in range(12):  # identical requests: the simulator numbers the attempts itself
                async with session.post(sim.base_url + CHAT, json=body(stream=False)) as r:
                    statuses.append(r.status)
            seen.append(statuses)
            async with session.post(
                sim.base_url + CHAT, json=body(stream=False), headers={"x-stainless-retry-count": "0"}
            ) as r:
                assert r.status == statuses[0]
    assert seen[0] == seen[1] and 200 in seen[0] and any(s >= 500 for s in seen[0])


async def test_transport_quirks_keep_the_text_for_the_openai_sdk(sim) -> None:
    async def text(mode: str) -> tuple[str, str, int]:
        client = openai.AsyncOpenAI(
            base_url=sim.base_url + "/v1",
            api_key="k",
            max_retries=0,
            default_headers={"x-sim-mode": mode} if mode else {},
        )
        stream = await client.chat.completions.create(**body(stream_options={"include_usage": True}))
        reasoning, content, tokens = "", "", 0
        async for chunk in stream:
            for choice in chunk.choices:
                reasoning += getattr(choice.delta, "reasoning_content", None) or ""
                content += choice.delta.content or ""
            tokens = chunk.usage.completion_tokens if chunk.usage else tokens
        await client.close()
        return reasoning, content, tokens

    plain = await text("")
    assert plain[2] == 400
    for mode in ("split", "crlf", "comments", "unknown_fields", "split,crlf,comments,unknown_fields"):
        assert await text(mode) == plain, mode


async def test_wire_of_transport_modes(sim) -> None:
    _, _, raw = await send(sim, "crlf,comments")
    assert b"\r\n\r\n" in raw and b": keep-alive\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    _, _, raw = await send(sim, "comments", body("sim-smollm2"))
    assert b": ping - " in raw
    _, _, raw = await send(sim, "done_no_finish", body(stream_options={"include_usage": True}))
    events = sse_events(raw)
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert events[-1][1] == "[DONE]" and all(c["choices"][0]["finish_reason"] is None for c in chunks)
    _, _, raw = await send(sim, "unknown_fields")
    assert all("obfuscation" in json.loads(d) for _, d in sse_events(raw)[:-1])
    status, _, raw = await send(sim, "nonsense")
    assert status == 400 and "unknown x-sim-mode" in json.loads(raw)["error"]["message"]


async def test_context_overflow(sim) -> None:
    too_long = {
        "model": "sim-smollm2",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "word " * 5000}],
    }
    status, _, raw = await send(sim, "", too_long)
    assert status == 400 and json.loads(raw)["error"]["code"] == "context_length_exceeded"
    status, _, raw = await send(sim, "", {**too_long, "stream": True})
    assert status == 200 and raw == b""  # llama-cpp-python's streamed answer to an over-long prompt
    short = {**too_long, "max_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = await send(sim, "", short)
    assert status == 200  # a cap beyond the window is not refused: generation just ends


async def test_interrupt_mode_and_llamacpp_validation_errors(datasets) -> None:
    async with (
        open_simulator(SimConfig(time_scale=1.0), datasets) as sim,
        aiohttp.ClientSession(headers=KEY_HEADER) as session,
    ):
        url = sim.base_url + CHAT
        first = body("sim-deepseek-reasoner", cap=3000)
        async with session.post(url, json=first, headers={"x-sim-mode": "interrupt"}) as a:
            await a.content.readline()  # the role chunk: the stream is running
            second = {**body("sim-deepseek-reasoner", cap=5), "stream": False}
            async with session.post(url, json=second) as b:
                assert b.status == 200
            events = sse_events(await a.read())
        assert events[-1][1] == "[DONE]"
        assert all(json.loads(d)["choices"][0]["finish_reason"] is None for _, d in events[:-1])
        async with session.post(url, json={"model": "sim-smollm2", "messages": "bad"}) as r:
            error = (await r.json())["error"]
            assert r.status == 500 and error["type"] == "internal_server_error"


class FakeClock:
    """The simulator's clock, moved by hand: a storm's length is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_429_storm_refuses_every_request_of_its_key_until_it_passes(datasets) -> None:
    clock = FakeClock()
    config = SimConfig(time_scale=0, faults=FaultRates(storm_seconds=3.0))
    async with open_simulator(config, datasets, clock=clock) as sim, aiohttp.ClientSession() as session:

        async def post(key: str, mode: str = "") -> tuple[int, dict[str, str], bytes]:
            headers = {"Authorization": f"Bearer {key}", **({"x-sim-mode": mode} if mode else {})}
            async with session.post(sim.base_url + CHAT, json=body(), headers=headers) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()

        status, headers, raw = await post("org-a", "rate_limit_storm")  # sets the storm off
        assert status == 429 and headers["retry-after-ms"] == "3000" and headers["retry-after"] == "3"
        assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
        clock.now += 1.0
        status, headers, _ = await post("org-a")  # any request of the key, in the storm
        assert status == 429 and headers["retry-after-ms"] == "2000"
        assert (await post("org-b"))[0] == 200  # another key's capacity is its own
        clock.now += 2.0
        assert (await post("org-a"))[0] == 200  # the storm has passed
        await sim.wait_idle()
        stats = sim.stats()
        a, b = stats.keys[key_digest("org-a")], stats.keys[key_digest("org-b")]
        assert (a.requests, a.rate_limited, a.faults, a.completed) == (3, 2, {"rate_limit_storm": 1}, 1)
        assert (b.requests, b.rate_limited, b.faults, b.completed) == (1, 0, {}, 1)
        assert a.input_tokens == b.input_tokens > 0  # the refused requests were not billed


async def test_a_reset_connection_gets_no_response_and_bills_nothing(sim) -> None:
    async with aiohttp.ClientSession(headers=KEY_HEADER) as session:
        with pytest.raises(aiohttp.ClientOSError, match="reset"):
            async with session.post(sim.base_url + CHAT, json=body(), headers={"x-sim-mode": "reset"}):
                pass
    stats = sim.stats().models["sim-reasoner-large"]
    assert stats.faults == {"reset": 1} and stats.requests == 1
    assert stats.input_tokens == stats.output_tokens == stats.completed == 0


async def test_a_trickle_slows_the_stream_to_its_gap_and_serves_it_all(datasets) -> None:
    config = SimConfig(time_scale=0, chunk_tokens=4, faults=FaultRates(trickle_seconds=600.0))
    async with open_simulator(config, datasets) as sim:
        # the chunks before the trickle come at once; after it, none within a 0.2 s read timeout
        timeout = aiohttp.ClientTimeout(sock_read=0.2)
        async with aiohttp.ClientSession(timeout=timeout, headers=KEY_HEADER) as session:
            async with session.post(sim.base_url + CHAT, json=body(), headers={"x-sim-mode": "trickle"}) as r:
                assert r.status == 200
                with pytest.raises(asyncio.TimeoutError):
                    await r.read()
        await sim.wait_idle()
        assert sim.stats().models["sim-reasoner-large"].faults == {"trickle": 1}
    config = SimConfig(time_scale=0, chunk_tokens=4, faults=FaultRates(trickle_seconds=0.001))
    async with open_simulator(config, datasets) as sim:
        stream_options = {"include_usage": True}
        status, _, raw = await send(sim, "trickle", body(cap=200, stream_options=stream_options))
        usage = json.loads(sse_events(raw)[-2][1])["usage"]
        assert status == 200 and usage["completion_tokens"] == 200  # slow, yet served to the end


async def test_a_mid_stream_fault_counts_only_when_it_strikes(datasets) -> None:
    config = SimConfig(time_scale=1.0, chunk_tokens=4)  # real speed: the drop is seconds away
    async with open_simulator(config, datasets) as sim, aiohttp.ClientSession(headers=KEY_HEADER) as session:
        async with session.post(sim.base_url + CHAT, json=body(cap=2000), headers={"x-sim-mode": "drop"}) as r:
            await r.content.readany()  # the first chunk, then the client leaves
        await sim.wait_idle()
        stats = sim.stats().models["sim-reasoner-large"]
        assert stats.faults == {} and stats.disconnected == 1


async def test_usage_is_logged_per_request_with_a_unique_request_id(sim) -> None:
    ids = []
    async with aiohttp.ClientSession() as session:
        for key in ("k1", "k1", "k2"):  # the same body twice: a retry, as the simulator sees it
            payload = body(cap=50, stream_options={"include_usage": True})
            async with session.post(sim.base_url + CHAT, json=payload, headers={"Authorization": f"Bearer {key}"}) as r:
                usage = json.loads(sse_events(await r.read())[-2][1])["usage"]
                ids.append((r.headers["x-request-id"], key_digest(key), usage))
    log = {u.request_id: u for u in sim.usage_log}
    assert len(log) == len(ids) == 3  # one report per request, each under its own id
    for request_id, digest, usage in ids:
        report = log[request_id]
        assert report.key == digest
        assert (report.input_tokens, report.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert sim.stats().keys[key_digest("k1")].usage_reports == 2


async def test_a_client_gone_before_the_stream_opens_is_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    """A client killed while its request was being admitted: preparing the stream raises
    ConnectionResetError, which is a client that left, not an error with a traceback in the log."""
    from aiohttp import web

    from anytime_sim.call import CLIENT_GONE, client_gone

    async def handler(request: web.Request) -> web.StreamResponse:
        raise ConnectionResetError("Cannot write to closing transport")

    app = web.Application(middlewares=[client_gone])
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{port}{CHAT}", json={}) as r:
            assert r.status == CLIENT_GONE
    finally:
        await runner.cleanup()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
