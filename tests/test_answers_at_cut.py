"""Forced answers at cut time, in budget order, laid out for the provider's prompt cache
(docs/caching.md), run on the simulator: the same grades as the earlier schedule, answer by answer;
each answer sent once the previous one has started answering, while the trace goes on; the answers
whose shared prefix is long enough read it from the cache; a group's first PDP trace warms its
preface; a trace that breaks and is retried asks no cut twice."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from runner.cli import main
from runner.ledger.audit import verify
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, Snapshot
from runner.tokens.budget import Cut
from tests.conftest import write_manifest

MANIFEST = """
[run]
name = "{name}"
seed = 3
ledger_dir = "@LEDGERS@"
max_usd = 5.0
confirm_above_usd = 5.0
answers = "{answers}"

[providers.sim]
kind = "sim"
max_concurrency = 12

[models.raw]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7
[models.content]
provider = "sim"
model = "sim-cot-small"
temperature = 0.7

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 3
pool = 2

[methods.cot]
kind = "cot"
[methods.pdp]
kind = "pdp"
k = 2
m = 1

[sweep]
budgets = [256, 512, 1024, 2048]

[simulator]
time_scale = 0.05
chunk_tokens = 16
{faults}
"""

Key = tuple[str, str, str, int, int | None]


def run(tmp_path: Path, name: str, answers: str = "at_cut", faults: str = "") -> list[object]:
    body = MANIFEST.format(name=name, answers=answers, faults=faults)
    path = write_manifest(tmp_path, body, f"{name}.toml")
    assert main(["run", str(path), "--yes", "--plain", "--no-report"]) == 0
    run_dir = tmp_path / "ledgers" / name
    assert verify(run_dir).ok
    return list(iter_records(run_dir))


def grades(records: list[object]) -> dict[Key, tuple[str, float]]:
    done = {r.job_id: r.instance for r in records if isinstance(r, JobDone)}
    return {
        (s.model, s.problem_id, s.method, s.sample, s.budget): (s.answer, s.score)
        for s in records
        if isinstance(s, Snapshot) and done.get(s.job_id) == s.instance
    }


def attempts(records: list[object], kind: str) -> dict[str, list[Attempt]]:
    by_job: dict[str, list[Attempt]] = defaultdict(list)
    for r in records:
        if isinstance(r, Attempt) and r.kind == kind:
            by_job[r.job_id].append(r)
    return by_job


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[object]]:
    tmp = tmp_path_factory.mktemp("answers")
    return {"at_cut": run(tmp, "cut"), "after_trace": run(tmp, "after", "after_trace")}


def test_the_same_grades_answer_by_answer(runs: dict[str, list[object]]) -> None:
    at_cut, after = grades(runs["at_cut"]), grades(runs["after_trace"])
    assert at_cut and at_cut == after  # every cut's answer and score, the layout changed or not


def test_answers_go_in_budget_order_each_after_the_previous_started(runs: dict[str, list[object]]) -> None:
    traces = {job: calls[-1] for job, calls in attempts(runs["at_cut"], "trace").items()}
    early = 0
    for job, answers in attempts(runs["at_cut"], "answer").items():
        answers.sort(key=lambda a: a.started_at)
        assert [a.budget for a in answers] == sorted(a.budget for a in answers if a.budget is not None)
        for before, after in itertools.pairwise(answers):
            assert before.ttft_s is not None
            # sent only once the previous answer's first output had arrived (clock rounding aside)
            assert after.started_at >= before.started_at + before.ttft_s - 1e-3
        trace = traces[job]
        early += answers[0].started_at < trace.started_at + trace.latency_s
    assert early > 0  # answers leave while their trace is still streaming


def test_long_shared_prefixes_are_read_from_the_cache(runs: dict[str, list[object]]) -> None:
    hits = 0
    for answers in attempts(runs["at_cut"], "answer").values():
        answers.sort(key=lambda a: a.started_at)
        for before, after in itertools.pairwise(answers):
            # the previous prompt up to its cut is this one's prefix: past 1,024 tokens it is cached
            if before.input_tokens_counted - 100 >= 1024 + 128:
                assert (after.cached_input_tokens or 0) >= 1024
                hits += 1
    assert hits > 0


def test_a_groups_first_trace_warms_its_preface(runs: dict[str, list[object]]) -> None:
    done = {r.job_id: r for r in runs["at_cut"] if isinstance(r, JobDone)}
    traces = [calls[-1] for job, calls in attempts(runs["at_cut"], "trace").items() if done[job].method == "pdp"]
    content = sorted((t for t in traces if t.model == "content"), key=lambda t: t.started_at)
    first, *others = content
    assert first.ttft_s is not None and others
    assert all(t.started_at >= first.started_at + first.ttft_s - 1e-3 for t in others)
    # the chain-of-thought model's traces end by themselves: their usage shows the cached preface
    assert (first.cached_input_tokens or 0) == 0
    assert all((t.cached_input_tokens or 0) >= 1024 for t in others)


def test_a_retried_trace_asks_no_cut_twice(tmp_path: Path, runs: dict[str, list[object]]) -> None:
    faulty = run(tmp_path, "faulty", faults="faults = { drop_mid_stream = 0.3 }")
    retried = [calls for calls in attempts(faulty, "trace").values() if len({a.attempt for a in calls}) > 1]
    assert retried  # some traces broke mid-stream and were streamed again
    calls = defaultdict(set)
    for answers in attempts(faulty, "answer").values():
        for a in answers:
            calls[(a.job_id, a.budget)].add(a.call_id)
    assert all(len(ids) == 1 for ids in calls.values())
    assert grades(faulty) == grades(runs["at_cut"])


async def test_a_trace_that_ends_after_its_chain_was_stopped_raises_nothing() -> None:
    """A stop cancels the chain's reader while the trace still finishes (seen in the crash matrix
    right after a SIGINT: BrokenResourceError from `trace_ended`): its cuts go unanswered, quietly."""
    from types import SimpleNamespace
    from typing import cast

    from runner.engine.answers import AnswerChain, TracedJob
    from runner.engine.calling import TraceResult

    job = cast(TracedJob, SimpleNamespace(budgets=[32, 64]))
    chain = AnswerChain(job)
    on_cut = chain.new_attempt()
    with anyio.CancelScope() as stop:
        async with anyio.create_task_group() as tg:
            tg.start_soon(chain.run, tg)
            await anyio.lowlevel.checkpoint()
            stop.cancel()  # the run stops: the reader closes its end
    cut = SimpleNamespace(budget=32, text="so far")
    on_cut(cast(Cut, cut))  # a mid-stream cut after the stop
    chain.trace_ended(cast(TraceResult, SimpleNamespace(consumer=SimpleNamespace(cuts={32: cut, 64: cut}))))
    assert chain.answered == {}
