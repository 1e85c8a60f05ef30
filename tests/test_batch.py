"""Batch mode (`run.mode = "batch"`, `--batch`) against the simulator's batch interfaces.

The same sweep run streamed and batched must grade every cut alike (the simulator answers a
request the same way in both, and the batch trace is cut from its whole text by the same
tokenizer), at about half the price; errored and expired requests are retried in later batches
with every attempt ledgered; the spend cap holds; a provider with no batch interface is refused
before anything is spent; the estimate prices both modes; the progress shows the batches.
"""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import msgspec
import pytest
from rich.console import Console

from anytime_sim import SimConfig, open_simulator
from runner.analysis.export import export_rows
from runner.analysis.transcripts import iter_transcripts
from runner.cli import main
from runner.engine.snapshots import RunSnapshot
from runner.ledger.audit import verify
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, BatchEvent, JobDone, Note, Snapshot
from runner.providers.anthropic import AnthropicAdapter
from runner.providers.anthropic_batch import AnthropicBatchClient
from runner.providers.batch import BatchClient, LineRequest
from runner.providers.gemini import GeminiAdapter
from runner.providers.gemini_batch import GeminiBatchClient
from runner.providers.openai_batch import OpenAIBatchClient
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.encodings import get_encoding
from runner.types import ChatRequest, Message
from runner.ui.dashboard import render_frame
from runner.ui.progress_log import plain_line
from tests.conftest import DATA, write_manifest

# every batch interface: OpenAI-style (the sim kind: raw and chain-of-thought models; xAI with its
# billed cost; o-series hidden reasoning; the Responses API), Anthropic and Gemini
MANIFEST = """
[run]
name = "{name}"
seed = 3
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0
batch_poll_s = 1.0
{extra}

[providers.sim]
kind = "sim"
[providers.xai]
kind = "xai"
base_url = "sim://"
[providers.openai]
kind = "openai"
base_url = "sim://"
[providers.anthropic]
kind = "anthropic"
base_url = "sim://"
[providers.gemini]
kind = "gemini"
base_url = "sim://"
[providers.responses]
kind = "openai_responses"
base_url = "sim://"

[models.reasoner]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7
[models.cot]
provider = "sim"
model = "sim-cot-small"
[models.grok]
provider = "xai"
model = "sim-grok-3-mini"
[models.o4]
provider = "openai"
model = "sim-o4-mini"
[models.claude]
provider = "anthropic"
model = "sim-claude-sonnet-4"
[models.gemini]
provider = "gemini"
model = "sim-gemini-2.5-flash"
[models.resp]
provider = "responses"
model = "sim-o4-mini"
reasoning_effort = "low"
price = {{ input = 1.1, output = 4.4 }}

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 2
pool = 2

[methods.cot]
kind = "cot"
[methods.pdp]
kind = "pdp"
k = 2
m = 1

[sweep]
budgets = [256, 1024]
samples = 1
methods = ["pdp"]  # its synthesis goes through batches first: pool traces, their answers, then the jobs
{sweep}

[simulator]
time_scale = 0.001
{simulator}
"""


def _manifest(tmp_path: Path, name: str, extra: str = "", sweep: str = "", simulator: str = "") -> Path:
    body = MANIFEST.format(name=name, extra=extra, sweep=sweep, simulator=simulator)
    return write_manifest(tmp_path, body, f"{name}.toml")


def _graded(run_dir: Path) -> dict[tuple[object, ...], tuple[float, int, str]]:
    """Every completed job's snapshots: (score, cut tokens, answer) per (model, method, problem, budget)."""
    records = list(iter_records(run_dir))
    done = {r.job_id: r.instance for r in records if isinstance(r, JobDone)}
    return {
        (s.model, s.method, s.problem_id, s.budget): (s.score, s.tokens, s.answer)
        for s in records
        if isinstance(s, Snapshot) and done.get(s.job_id) == s.instance
    }


def _usd_by_model(run_dir: Path, kind: str | None = None) -> dict[str, float]:
    """Dollars per model, of every attempt or of one kind's."""
    usd: dict[str, float] = defaultdict(float)
    for r in iter_records(run_dir):
        if isinstance(r, Attempt) and kind in (None, r.kind):
            usd[r.model] += r.usd
    return usd


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep streamed: what batch mode must grade alike."""
    tmp_path = tmp_path_factory.mktemp("streamed")
    assert main(["run", str(_manifest(tmp_path, "streamed")), "--yes", "--quiet"]) == 0
    return tmp_path / "ledgers" / "streamed"


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same sweep in batch mode."""
    tmp_path = tmp_path_factory.mktemp("batched")
    assert main(["run", str(_manifest(tmp_path, "batched")), "--batch", "--yes", "--quiet"]) == 0
    return tmp_path / "ledgers" / "batched"


def test_batch_grades_every_cut_as_streaming_at_half_the_price(batched: Path, streamed: Path) -> None:
    run_dir = batched
    graded = _graded(run_dir)
    assert graded == _graded(streamed) and len(graded) == 7 * 2 * 3  # models x problems x (2 cuts + full)
    result = verify(run_dir)
    assert result.ok, result.render()
    attempts = [r for r in iter_records(run_dir) if isinstance(r, Attempt)]
    assert all(a.batch_key and a.batch_id for a in attempts)  # every request went in a batch
    # the answers are the same calls in both modes, at batch rates (cache hits aside)
    ours, theirs = _usd_by_model(run_dir, "answer"), _usd_by_model(streamed, "answer")
    for model, usd in ours.items():
        assert 0.4 <= usd / theirs[model] <= 0.55, (model, usd, theirs[model])
    # a batched trace is billed up to its cap; a streamed one for what was sent before the cut,
    # which a fast stream may overrun: batch mode is at most half, never the streamed price
    ours, theirs = _usd_by_model(run_dir), _usd_by_model(streamed)
    for model, usd in ours.items():
        assert usd <= 0.55 * theirs[model], (model, usd, theirs[model])


def test_batch_calls_are_transcribed_as_streamed_ones(batched: Path, streamed: Path) -> None:
    """Every job's transcript holds its batch calls: the trace cut exactly where streaming cut it,
    each answer sent that prefix, the ledger's attempts and dollars; `anytime export` reads them."""
    done = {r.job_id: r.instance for r in iter_records(batched) if isinstance(r, JobDone)}
    ours = {t.job_id: t for t in iter_transcripts(batched)}
    theirs = {(t.model, t.problem_id, t.method): t for t in iter_transcripts(streamed)}
    assert set(ours) == set(done) and len(done) == 7 * 2
    attempts = [r for r in iter_records(batched) if isinstance(r, Attempt)]
    encoding = get_encoding("o200k_base")
    for t in ours.values():
        assert t.complete and t.instance == done[t.job_id]
        mine = [a for a in attempts if a.job_id == t.job_id and a.instance == t.instance]
        assert {c.call_id for c in t.calls} == {a.call_id for a in mine} and all(c.transcribed for c in t.calls)
        assert t.usd == pytest.approx(sum(a.usd for a in mine))
        assert [a.answer for a in t.answers] == [a.answer for a in theirs[(t.model, t.problem_id, t.method)].answers]
        if t.traced is None:
            continue  # hidden reasoning: one answer call per budget
        text = t.reasoning if t.traced == "reasoning" else t.content
        same = theirs[(t.model, t.problem_id, t.method)]
        streamed_text = same.reasoning if same.traced == "reasoning" else same.content
        for cut, other in zip(t.cuts, same.cuts, strict=True):
            chars = cut.reasoning_chars if t.traced == "reasoning" else cut.content_chars
            assert chars is not None and text[:chars] == streamed_text[: other.reasoning_chars or other.content_chars]
            if t.model != "claude":  # the simulated Claude's tokenizer is not o200k
                assert len(encoding.encode_ordinary(text[:chars])) == cut.tokens <= cut.budget
            answer = next(a for a in t.answers if a.budget == cut.budget)
            assert text[:chars] in "".join(m.content for m in answer.messages)
    rows = list(export_rows(batched))
    assert len(rows) == 7 * 2 * 3 and all(r.answer_text is not None for r in rows if r.budget is not None)


def test_errored_and_expired_requests_are_retried_and_ledgered(
    tmp_path: Path, streamed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = "faults = { batch_error = 0.25, batch_expire = 0.15 }"
    path = _manifest(tmp_path, "faulty", sweep='models = ["reasoner", "claude", "gemini"]', simulator=faults)
    code = main(["run", str(path), "--batch", "--yes", "--json-progress", "--progress-every", "0.05"])
    assert code == 0, capsys.readouterr().err
    run_dir = tmp_path / "ledgers" / "faulty"
    expected = {k: v for k, v in _graded(streamed).items() if k[0] in ("reasoner", "claude", "gemini")}
    assert _graded(run_dir) == expected
    attempts = [r for r in iter_records(run_dir) if isinstance(r, Attempt)]
    failed = [a for a in attempts if a.status == "error"]
    assert {a.error_class for a in failed} == {"server", "batch_expired"}
    assert all(a.priced_from == "unbilled" and a.usd == 0 for a in failed)
    retried = {a.call_id for a in failed}
    assert all(any(b.call_id == c and b.status != "error" for b in attempts) for c in retried)  # each came back
    assert len({(a.call_id, a.attempt) for a in attempts}) == len(attempts)
    assert verify(run_dir).ok
    # the progress showed the batches, and an expired one among them
    progress = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    states = {b["state"] for p in progress if p["event"] == "progress" for b in p["batches"]}
    assert {"ended", "expired"} <= states and states & {"submitted", "in progress"}
    # the dashboard and the line log show them: a row per batch with its state, and a summary
    live = next(
        p for p in progress if p["event"] == "progress" and any(b["state"] == "in progress" for b in p["batches"])
    )
    snap = msgspec.convert({k: v for k, v in live.items() if k != "event"}, RunSnapshot)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_frame(snap, 120))
    frame = console.file.getvalue()  # type: ignore[attr-defined]
    assert "batches:" in frame and "in progress" in frame and "a batch may take up to 24 h" in frame
    assert all((b.batch_id or b.key)[:20] in frame for b in snap.batches[-8:])
    assert "batches: " in plain_line(snap) and "requests done" in plain_line(snap)


def test_a_job_whose_batch_requests_fail_for_good_is_noted_failed(tmp_path: Path) -> None:
    """With one attempt a request, a request that errors in its batch fails its job: the execution
    is noted ``job_failed`` with its instance, as a streamed one is (the report counts its spend as
    failed, not interrupted, once another execution completes the job)."""
    path = _manifest(
        tmp_path,
        "failing",
        sweep='models = ["reasoner"]',
        simulator="faults = { batch_error = 0.4 }",
    )
    text = path.read_text().replace('kind = "sim"\n', 'kind = "sim"\nmax_attempts = 1\n', 1)
    path.write_text(text.replace('methods = ["pdp"]', 'methods = ["cot"]'))
    assert main(["run", str(path), "--batch", "--yes", "--quiet"]) == 1
    run_dir = tmp_path / "ledgers" / "failing"
    records = list(iter_records(run_dir))
    failed = {(r.job_id, r.instance) for r in records if isinstance(r, Note) and r.kind == "job_failed"}
    errored = {(a.job_id, a.instance) for a in records if isinstance(a, Attempt) and a.status == "error"}
    assert failed and failed == errored
    assert not failed & {(r.job_id, r.instance) for r in records if isinstance(r, JobDone)}
    assert verify(run_dir).ok


def test_the_spend_cap_holds_batches_back(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "capped", extra="max_usd = 0.03", sweep='models = ["claude", "reasoner"]')
    assert main(["run", str(path), "--batch", "--yes", "--quiet"]) == 3
    run_dir = tmp_path / "ledgers" / "capped"
    result = verify(run_dir)
    assert result.ok and result.usd_recorded <= 0.03
    intents = [r for r in iter_records(run_dir) if isinstance(r, BatchEvent) and r.event == "intent"]
    assert intents and all(r.reserved_usd > 0 for r in intents)  # each reserved its worst case first


@pytest.mark.parametrize("kind", ["llamacpp", "openai_compatible"])
def test_a_provider_without_a_batch_interface_is_refused(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = MANIFEST.format(name="none", extra="", sweep='models = ["local"]', simulator="").replace(
        "[models.reasoner]",
        f'[providers.local]\nkind = "{kind}"\nbase_url = "sim://"\n\n[models.local]\n'
        'provider = "local"\nmodel = "sim-gpt-oss-20b"\n\n[models.reasoner]',
    )
    path = write_manifest(tmp_path, body, "none.toml")
    assert main(["validate", str(path)]) == 0
    assert main(["validate", str(path), "--batch"]) == 2
    assert main(["run", str(path), "--batch", "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"providers.local (kind '{kind}') has no batch interface" in err and "run.mode" in err
    assert not (tmp_path / "ledgers").exists()  # nothing was spent


def test_the_estimate_prices_both_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _manifest(tmp_path, "priced")
    assert main(["estimate", str(path), "--json", "--no-history"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert main(["estimate", str(path), "--json", "--no-history", "--batch"]) == 0
    batched = json.loads(capsys.readouterr().out)
    assert streamed["mode"] == "stream" and batched["mode"] == "batch"
    assert batched["usd_expected"] == pytest.approx(streamed["usd_batch"]["expected"])
    assert streamed["usd_expected"] == pytest.approx(batched["usd_stream"]["expected"])
    assert batched["usd_expected"] == pytest.approx(0.5 * streamed["usd_expected"], rel=0.05)
    assert batched["batch_waves"] == 4  # PDP's pool traces and answers, then the jobs' traces and answers
    assert main(["estimate", str(path), "--no-history", "--batch"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "4 batches one after another, each up to 24 h" in shown and "streamed: expected" in shown


async def test_a_batch_past_its_window_expires_what_it_did_not_process() -> None:
    config = SimConfig(time_scale=1.0, batch_queue_s=0.0, batch_window_s=0.05, batch_concurrency=1)
    async with open_simulator(config, [("aime", DATA / "aime_2024.jsonl")]) as sim, aiohttp.ClientSession() as s:
        client = OpenAIBatchClient(OpenAIChatAdapter(sim.base_url, "key", provider="sim"))
        request = ChatRequest(model="sim-cot-small", messages=(Message("user", "hello"),), max_output_tokens=400)
        lines = [LineRequest(f"r-{i}", request) for i in range(3)]

        async def nothing(_file_id: str) -> None:
            return None

        state = await client.submit(s, "anytime-window", lines, nothing)
        while state.phase != "ended":
            state = await client.poll(s, state.batch_id)
        assert state.status == "expired" and state.expired
        results = {r.custom_id: r.outcome for r in await client.results(s, state)}
        assert results["r-0"] == "succeeded" and set(results.values()) == {"succeeded", "expired"}
        found = await client.find(s, "anytime-window", 0.0, 3)
        assert found is not None and found.state is not None and found.state.batch_id == state.batch_id
        assert await client.find(s, "anytime-elsewhere", 0.0, 3) is None


@pytest.mark.parametrize("interface", ["anthropic", "gemini"])
async def test_a_submission_whose_id_was_lost_is_found_again(interface: str) -> None:
    """After a crash between submitting and recording the id, the resume looks the batch up: a
    Message Batch by when it was made and its size, a Gemini batch by its display name (our key)."""
    config = SimConfig(time_scale=0.001)
    async with open_simulator(config, [("aime", DATA / "aime_2024.jsonl")]) as sim, aiohttp.ClientSession() as s:
        client: BatchClient
        if interface == "anthropic":
            client = AnthropicBatchClient(AnthropicAdapter(sim.base_url + "/v1", "key", provider="anthropic"))
            model = "sim-claude-sonnet-4"
        else:
            client = GeminiBatchClient(GeminiAdapter(sim.base_url + "/v1beta", "key", provider="gemini"))
            model = "sim-gemini-2.5-flash"
        request = ChatRequest(model=model, messages=(Message("user", "hello"),), max_output_tokens=64)
        lines = [LineRequest(f"r-{i}", request) for i in range(3)]

        async def nothing(_file_id: str) -> None:
            return None

        since = time.time()
        await client.submit(s, "anytime-lost", [LineRequest("other-0", request)], nothing)  # another, smaller
        state = await client.submit(s, "anytime-lost", lines, nothing)
        found = await client.find(s, "anytime-lost", since, 3)
        assert found is not None and found.state is not None and found.state.batch_id == state.batch_id
        if interface == "anthropic":  # a batch made before the intent is not it
            assert await client.find(s, "anytime-lost", time.time() + 3600, 3) is None
        else:  # a key the provider never saw: the submission never arrived
            assert await client.find(s, "anytime-elsewhere", since, 3) is None
        while state.phase != "ended":
            state = await client.poll(s, state.batch_id)
        results = {r.custom_id: r.outcome for r in await client.results(s, state)}
        assert results == {f"r-{i}": "succeeded" for i in range(3)}
