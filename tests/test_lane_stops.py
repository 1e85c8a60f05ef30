"""A configuration error stops its lane at once: one attempt, one clear message naming the model,
the URL and the fix, and nothing more spent. A host that answered before is only retried."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from anytime_sim import SimConfig, open_simulator
from runner.cli import main
from runner.engine.consumers import AnswerConsumer
from runner.engine.lane import CallSpec, Lane
from runner.engine.limits import LaneLimiter
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.errors import EndpointUnreachable, LaneStopped
from runner.ledger.memory import MemorySink
from runner.ledger.prices import ModelPrice
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, Note
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.encodings import get_encoding
from runner.types import ChatRequest, Message
from tests.conftest import write_manifest


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lane(session: aiohttp.ClientSession, base_url: str, key: str | None, sink: MemorySink) -> Lane:
    return Lane(
        name="p",
        adapter=OpenAIChatAdapter(base_url, key, provider="p"),
        limiter=LaneLimiter(rpm=None, tpm=None, max_concurrency=8),
        policy=RetryPolicy(max_attempts=6, base=0.01, cap=0.02, seed=0),
        session=session,
        ledger=sink,
        spend=SpendGuard(None, {}),
        first_token_timeout=30.0,
        idle_timeout=30.0,
        total_timeout=60.0,
        key_env="P_KEY",
    )


def spec(model: str, i: int = 0) -> CallSpec:
    request = ChatRequest(model=model, messages=(Message("user", f"Add {i} and 1."),), max_output_tokens=16)
    return CallSpec(
        job_id=f"j{i}", kind="answer", model="m", request=request, prompt_tokens=20, price=ModelPrice(input=1, output=2)
    )


async def calls(the_lane: Lane, n: int, model: str) -> list[BaseException]:
    """``n`` calls at once, as a lane's workers make them; the errors they end with."""
    import anyio

    errors: list[BaseException] = []

    async def one(i: int) -> None:
        try:
            await the_lane.call(spec(model, i), lambda: AnswerConsumer(get_encoding("o200k_base")))
        except (LaneStopped, EndpointUnreachable) as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return errors


@pytest.mark.parametrize(
    ("case", "fix"),
    [
        ("unknown model", "check the model id"),
        ("no key", "check the key in $P_KEY"),
        ("connection refused", "nothing answers there"),
        ("name does not resolve", "nothing answers there"),
    ],
)
async def test_a_misconfigured_lane_makes_one_attempt_and_names_the_fix(case: str, fix: str) -> None:
    sink = MemorySink()
    async with open_simulator(SimConfig(time_scale=0), []) as sim, aiohttp.ClientSession() as session:
        base, key, model = f"{sim.base_url}/v1", "k", "sim-gpt-4.1"
        if case == "unknown model":
            model = "sim-no-such-model"
        elif case == "no key":
            key = None
        elif case == "connection refused":
            base = f"http://127.0.0.1:{closed_port()}/v1"
        else:
            base = "http://no-such-host.invalid/v1"
        the_lane = lane(session, base, key, sink)
        errors = await calls(the_lane, 8, model)
    assert len(errors) == 8 and all(isinstance(e, LaneStopped) for e in errors)
    message = str(errors[0])
    assert "providers.p" in message and repr(model) in message and base in message and fix in message
    # one attempt probed the lane; the seven other workers never sent anything, and nothing was paid
    assert len(sink.attempts()) == 1 and sink.attempts()[0].usd == 0.0
    assert the_lane.counters.retries == 0


async def test_a_host_that_answered_before_is_retried_not_stopped() -> None:
    sink = MemorySink()
    async with aiohttp.ClientSession() as session:
        async with open_simulator(SimConfig(time_scale=0), []) as sim:
            the_lane = lane(session, f"{sim.base_url}/v1", "k", sink)
            assert await calls(the_lane, 1, "sim-gpt-4.1") == []
        # the simulator is gone now: a server restarting, as far as the lane can tell
        errors = await calls(the_lane, 1, "sim-gpt-4.1")
    assert len(errors) == 1 and type(errors[0]) is EndpointUnreachable
    assert the_lane.stopped is None and len(sink.attempts()) == 1 + 6  # every attempt the policy allows


MANIFEST = """
[run]
name = "stops"
ledger_dir = "@LEDGERS@"
[providers.good]
kind = "sim"
[providers.bad]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{port}/v1"
max_concurrency = 8
[models.fine]
provider = "good"
model = "sim-cot-small"
[models.broken]
provider = "bad"
model = "some-model"
price = {{ input = 1.0, output = 1.0 }}
[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 6
[sweep]
budgets = [64, 128]
[simulator]
time_scale = 0.0
"""


def test_run_stops_only_the_misconfigured_lane_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, MANIFEST.format(port=closed_port()))
    assert main(["run", str(path), "--yes", "--plain", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: providers.bad") == 1 and "some-model" in err and "base_url" in err
    records = list(iter_records(tmp_path / "ledgers" / "stops"))
    attempts = [r for r in records if isinstance(r, Attempt)]
    broken = [a for a in attempts if a.provider == "bad"]
    assert len(broken) == 1 and broken[0].usd == 0.0  # one probe, never retried, nothing paid
    assert len([r for r in records if isinstance(r, Note) and r.kind == "lane_stopped"]) == 1
    # the other lane ran every one of its jobs
    assert sum(1 for r in records if getattr(r, "model", None) == "fine" and r.__class__.__name__ == "JobDone") == 6
