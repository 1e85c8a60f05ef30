"""Trace reuse end to end on the simulator over loopback (docs/reuse.md): a rerun with one more
budget, or one more method with cot's trace prompt, pays only for new forced answers, with the same
grades; a changed seed or temperature reuses nothing; a stored trace shorter than a new budget is
continued (Anthropic, chain of thought) or requested again (Chat Completions); a run without
transcripts cannot serve."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace as with_field
from pathlib import Path

import pytest
from msgspec.structs import replace
from rich.console import Console

from runner.analysis.report import build_report
from runner.cli import main
from runner.config.calls import plan_model
from runner.config.manifest import Overrides, load_manifest
from runner.config.overrides import apply_overrides
from runner.config.reuse_keys import call_key, trace_key
from runner.ledger.audit import verify
from runner.ledger.estimate import estimate_manifest
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, Reuse, Snapshot
from runner.ledger.trace_store import TraceStore
from runner.types import ChatRequest, Message
from runner.ui.report_files import print_report
from runner.ui.view import payloads
from runner.ui.view.models import ModelCache
from tests.conftest import write_manifest

MANIFEST = """
[run]
name = "{name}"
seed = {seed}
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 16

[providers.anth]
kind = "anthropic"
base_url = "sim://"
max_concurrency = 16

[models.raw]
provider = "sim"
model = "sim-reasoner-large"
temperature = {temperature}

[models.cot]
provider = "sim"
model = "sim-cot-small"
temperature = {temperature}

[models.plain]
provider = "anth"
model = "sim-claude-plain"
fidelity = "content"
temperature = {temperature}
price = {{ input = 3.0, output = 15.0 }}

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 3

[methods.cot]
kind = "cot"
{methods}

[sweep]
budgets = [64, 128, 256]
samples = 2

[simulator]
time_scale = 0.0
chunk_tokens = 16
"""
JOBS = 3 * 3 * 2  # models x problems x samples, per method


def manifest(tmp_path: Path, name: str = "t", *, seed: int = 3, temperature: float = 0.7, methods: str = "") -> Path:
    body = MANIFEST.format(name=name, seed=seed, temperature=temperature, methods=methods)
    return write_manifest(tmp_path, body, f"{name}.toml")


def run(path: Path, *flags: str, code: int = 0) -> None:
    assert main(["run", str(path), "--yes", "--quiet", "--no-report", *flags]) == code


def records_of(run_dir: Path) -> tuple[list[Attempt], list[Reuse], list[Snapshot]]:
    records = list(iter_records(run_dir))
    return (
        [r for r in records if isinstance(r, Attempt)],
        [r for r in records if isinstance(r, Reuse)],
        [r for r in records if isinstance(r, Snapshot)],
    )


def grades(run_dir: Path, method: str | None = None) -> dict[tuple[str, str, int, int | None], tuple[str, float]]:
    """(model, problem, sample, budget) -> (answer, score) of every snapshot (of ``method``)."""
    return {
        (s.model, s.problem_id, s.sample, s.budget): (s.answer, s.score)
        for s in records_of(run_dir)[2]
        if method is None or s.method == method
    }


def newest(ledgers: Path, name: str) -> Path:
    return sorted(ledgers.glob(f"{name}-*"))[-1]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paid run: 3 models (Chat Completions raw and content, Anthropic content) x 3 problems x 2 samples."""
    tmp = tmp_path_factory.mktemp("reuse")
    run(manifest(tmp))
    return tmp / "ledgers" / "t"


def test_one_more_budget_pays_only_its_answers(base: Path, tmp_path: Path) -> None:
    path = manifest(tmp_path)
    budgets = "--budgets", "64,96,128,256"
    wider = apply_overrides(load_manifest(path), Overrides(budgets=[64, 96, 128, 256], reuse=[str(base)]))
    estimate = estimate_manifest(wider, previous=[])
    assert sum(r.reused_traces for r in estimate.rows) == JOBS
    run(path, *budgets, "--reuse", str(base))
    run_dir = tmp_path / "ledgers" / "t"
    attempts, reused, _ = records_of(run_dir)
    assert not [a for a in attempts if a.kind == "trace"]  # zero new trace calls
    assert attempts and {a.budget for a in attempts} == {96}  # only the new budget's answers are paid
    assert sum(r.kind == "trace" and r.mode == "served" for r in reused) == JOBS
    assert {r.source_run for r in reused} == {str(base)}
    before, after = grades(base), grades(run_dir)
    assert {k: v for k, v in after.items() if k[3] != 96} == before  # identical grades at the shared budgets
    spent = sum(a.usd for a in attempts)
    assert estimate.usd_low <= spent <= estimate.usd_high
    audit = verify(run_dir)
    paid_before = sum(a.usd for a in records_of(base)[0])
    assert audit.ok and 0.5 * paid_before < audit.usd_not_spent <= paid_before + 1e-9  # never more than was paid
    report = build_report([run_dir])
    console = Console(record=True, width=200)
    print_report(report, console)
    line = next(text for text in console.export_text().splitlines() if text.startswith("reused"))
    assert (
        line.startswith(f"reused {JOBS} traces and ") and f"${report.runs[0].reuse.usd_not_spent:.4f} not spent" in line
    )
    # the totals agree: verify's spend is the report's (paid calls only), the reused dollars apart
    assert audit.usd_recorded == pytest.approx(report.runs[0].usd_total) == pytest.approx(spent)
    assert audit.usd_not_spent == pytest.approx(report.runs[0].reuse.usd_not_spent)
    # and the viewer shows them apart too: the run's reuse beside its spend, a trace's reused calls
    view = ModelCache().get(run_dir)
    detail = payloads.run_detail("t", view)
    assert detail["usd_total"] == pytest.approx(spent) and detail["report"]["reuse"]["traces"] == JOBS
    served = payloads.job(view, reused[0].job_id)
    assert {r["mode"] for r in served["reused"]} == {"served"} and all(c["budget"] == 96 for c in served["calls"])


def test_a_method_with_cots_trace_prompt_pays_nothing_new(base: Path, tmp_path: Path) -> None:
    """Rerun in place with one more method whose trace prompt is cot's (a setting its prompt does not
    read differs, so its jobs are new jobs): they come from the run's own transcripts, traces and
    answers alike."""
    shutil.copytree(base, tmp_path / "ledgers" / "t")
    path = manifest(tmp_path, methods='[methods.again]\nkind = "cot"\nk = 5')
    run(path)
    attempts, reused, _ = records_of(tmp_path / "ledgers" / "t")
    assert len(attempts) == len(records_of(base)[0])  # nothing new was paid
    assert sum(r.kind == "trace" for r in reused) == JOBS
    assert grades(tmp_path / "ledgers" / "t", "again") == grades(tmp_path / "ledgers" / "t", "cot")


@pytest.mark.parametrize("change", [{"seed": 4}, {"temperature": 0.6}])
def test_a_changed_seed_or_temperature_reuses_nothing(base: Path, tmp_path: Path, change: dict[str, float]) -> None:
    path = manifest(tmp_path, **change)  # type: ignore[arg-type]
    run(path, "--limit", "1", "--samples", "1", "--reuse", str(base))
    attempts, reused, _ = records_of(tmp_path / "ledgers" / "t")
    assert not reused
    assert sum(a.kind == "trace" for a in attempts) == 3


def test_a_trace_shorter_than_a_new_budget_is_continued_or_requested_again(base: Path, tmp_path: Path) -> None:
    """Anthropic continues a chain-of-thought trace from a prefill; Chat Completions cannot: the
    trace is requested again and its shared cuts' answers reused. Either way the grades are the
    ones a fresh run gets (the simulator is deterministic)."""
    wider = "--budgets", "64,128,256,512"
    run(manifest(tmp_path, "fresh"), *wider)
    path = manifest(tmp_path)
    overrides = Overrides(budgets=[64, 128, 256, 512], reuse=[str(base)])
    estimate = estimate_manifest(apply_overrides(load_manifest(path), overrides), previous=[])
    run(path, *wider, "--reuse", str(base))
    run_dir = tmp_path / "ledgers" / "t"
    attempts, reused, _ = records_of(run_dir)
    spent = sum(a.usd for a in attempts)
    # priced with its trace call and only the answers past the stored reach (as a whole job: +122%)
    assert estimate.usd_low <= spent <= estimate.usd_high and abs(estimate.usd_expected / spent - 1) < 0.5
    traces = {r.model: r.mode for r in reused if r.kind == "trace"}
    assert traces == {"plain": "continued", "cot": "requested", "raw": "requested"}
    requested = next(r for r in reused if r.mode == "requested")
    assert "cannot continue" in (requested.reason or "") and "requested again" in (requested.reason or "")
    continued = [a for a in attempts if a.kind == "trace" and a.model == "plain"]
    # a continuation asks for what the last budget leaves past the stored 256 tokens (a prefill's
    # trailing whitespace, stripped, leaves a token or so more), not for a whole trace
    assert continued and all(
        (a.output_tokens or a.output_tokens_counted) <= (a.max_output_tokens or 0) < 512 - 256 + 16 + 4
        for a in continued
    )
    assert any(r.kind == "answer" and r.model == "cot" for r in reused)  # shared cuts' answers kept
    assert grades(run_dir) == grades(tmp_path / "ledgers" / "fresh")
    assert verify(run_dir).ok
    assert "continued 6 stored traces past their end" in build_report_text(run_dir)


def test_a_continued_trace_commits_the_spend_cap_only_to_its_new_answers(base: Path, tmp_path: Path) -> None:
    """One Anthropic job continued past its stored 256 tokens under a $0.02 cap: the trace's call
    reserves the continuation and the one new answer's worst case (~$0.012), not the four answers'
    (~$0.03, which the cap refused: exit 3); the answers to the stored cuts are served and reserve nothing."""
    path = manifest(tmp_path)
    only = "--model", "plain", "--limit", "1", "--samples", "1"
    run(path, "--budgets", "64,128,256,512", *only, "--reuse", str(base), "--max-usd", "0.02")
    attempts, reused, _ = records_of(tmp_path / "ledgers" / "t")
    assert [r.mode for r in reused if r.kind == "trace"] == ["continued"]
    assert sorted(r.budget for r in reused if r.kind == "answer") == [64, 128, 256]
    assert {a.budget for a in attempts if a.kind == "answer"} == {512} and sum(a.usd for a in attempts) <= 0.02


def test_reuse_turned_off_pays_for_every_call_again(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--no-reuse`` (``run.reuse_calls = false``): a rerun with one more budget serves nothing, not
    even from the manifest's own run folder, and its estimate prices every trace."""
    shutil.copytree(base, tmp_path / "ledgers" / "t")
    path = manifest(tmp_path)
    only = "--model", "cot", "--budgets", "64,96,128,256"
    for flags, served in (((), 3 * 2), (("--no-reuse",), 0), (("--batch",), 0)):  # batch mode reuses nothing
        assert main(["estimate", str(path), *only, *flags, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["reused_traces"] == served
    run(path, *only, "--no-reuse", "--new-run")  # beside the manifest's folder, which it would reuse
    attempts, reused, _ = records_of(newest(tmp_path / "ledgers", "t"))
    assert not reused and sum(a.kind == "trace" for a in attempts) == 3 * 2
    with pytest.raises(SystemExit) as exited:  # one or the other
        main(["run", str(path), "--yes", "--no-reuse", "--reuse", str(base)])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    off = manifest(tmp_path, "off").read_text().replace("[run]\n", '[run]\nreuse = ["t"]\nreuse_calls = false\n')
    (tmp_path / "off.toml").write_text(off)
    assert main(["validate", str(tmp_path / "off.toml")]) == 2
    assert "off.toml: run: `reuse` names runs" in capsys.readouterr().err
    assert main(["validate", str(path), "--batch", "--reuse", str(base)]) == 2
    assert "batch mode" in capsys.readouterr().err


def build_report_text(run_dir: Path) -> str:
    console = Console(record=True, width=200)
    print_report(build_report([run_dir]), console)
    return console.export_text()


def test_a_run_without_transcripts_cannot_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, "bare")
    run(path, "--limit", "1", "--samples", "1", "--model", "cot", "--no-transcripts")
    bare = tmp_path / "ledgers" / "bare"
    capsys.readouterr()
    for command in (["run", str(path), "--yes", "--new-run"], ["estimate", str(path)], ["validate", str(path)]):
        assert main([*command, "--reuse", str(bare)]) == 2
        err = capsys.readouterr().err
        assert f"--reuse {bare}" in err and "no transcripts.jsonl.gz" in err and "--no-transcripts" in err
    assert main(["estimate", str(path), "--reuse", str(tmp_path)]) == 2  # not a run folder at all
    assert "no ledger.jsonl here" in capsys.readouterr().err
    assert len(list((tmp_path / "ledgers").iterdir())) == 1  # nothing was started


def test_failed_or_interrupted_calls_never_serve(base: Path, tmp_path: Path) -> None:
    copy = tmp_path / "t"
    shutil.copytree(base, copy)
    store = TraceStore.open([copy])
    stored = next(iter(store.traces.values()))
    ledger = copy / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    for status in (b"interrupted", b"error"):
        marked = [
            re.sub(rb'"status":"[a-z]+"', b'"status":"' + status + b'"', line)
            if f'"call_id":"{stored.call_id}"'.encode() in line
            else line
            for line in lines
        ]
        ledger.write_bytes(b"".join(marked))
        assert stored.call_id not in {s.call_id for s in TraceStore.open([copy]).traces.values()}


def test_what_the_trace_key_covers(base: Path) -> None:
    loaded = load_manifest(base.parent.parent / "t.toml")
    plan = plan_model(loaded, "cot")
    request = ChatRequest(
        model="m", messages=(Message("user", "problem"),), max_output_tokens=256, seed=1, temperature=0.7
    )
    key = trace_key(plan, request)
    assert trace_key(plan, replace(request, max_output_tokens=4096)) == key  # the cap is the reach, not the key
    for changed in (
        replace(request, seed=2),
        replace(request, temperature=0.6),
        replace(request, model="m2"),
        replace(request, reasoning_effort="low"),
        replace(request, messages=(Message("user", "problem."),)),
        replace(request, messages=(Message("system", "problem"),)),
    ):
        assert trace_key(plan, changed) != key
    assert trace_key(with_field(plan, provider_kind="xai"), request) != key
    assert trace_key(with_field(plan, base_url="sim://"), request) != key
    assert trace_key(with_field(plan, fidelity="raw"), request) != key
    thinking = with_field(plan, provider_kind="anthropic")
    assert trace_key(thinking, replace(request, reasoning_budget=2048)) != trace_key(thinking, request)
    assert trace_key(plan, replace(request, reasoning_budget=2048)) == key  # not sent on Chat Completions
    assert call_key(plan, request, key) != call_key(plan, replace(request, max_output_tokens=128), key)
    assert call_key(plan, request, key) != call_key(plan, request, "t1:other")
