"""The estimate prices the calls the run makes: every attempt in a simulator run's ledger is one of
the planner's calls for its job (same kind, budget, output cap, thinking budget and prompt), and the
planned calls it did not make are exactly the forced answers a shorter trace let it reuse."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from runner.cli import main
from runner.config.calls import PlannedCall, job_calls, plan_models, synthesis_calls, synthesis_key
from runner.config.manifest import LoadedManifest, load_manifest
from runner.config.plan import expand_jobs
from runner.ledger.estimate import count_prompts
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, Snapshot, Synthesis
from tests.conftest import write_manifest

MANIFEST = """
[run]
name = "planned"
ledger_dir = "@LEDGERS@"
max_usd = 5.0
confirm_above_usd = 5.0

[providers.sim]
kind = "sim"
[providers.openai]
kind = "openai"
base_url = "sim://"
api_key_env = "OPENAI_API_KEY"
[providers.anthropic]
kind = "anthropic"
base_url = "sim://"
api_key_env = "ANTHROPIC_API_KEY"

[models.raw]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7
[models.content]
provider = "sim"
model = "sim-cot-small"
[models.hidden]
provider = "openai"
model = "sim-o4-mini"
[models.summarised]
provider = "anthropic"
model = "sim-claude-sonnet-4"

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
[methods.leap]
kind = "leap"
k = 2

[sweep]
budgets = [128, 256, 768]
samples = 1

[simulator]
time_scale = 0.0
"""

Key = tuple[str, str, int | None]  # (job id, kind, budget)


def planned_for_run(loaded: LoadedManifest, prefaces: dict[str, str]) -> dict[Key, list[PlannedCall]]:
    """The planner's calls for every job, given the prefaces the run's synthesis actually built."""
    models = plan_models(loaded)
    planned: dict[Key, list[PlannedCall]] = defaultdict(list)
    groups = set()
    for job in expand_jobs(loaded):
        key = synthesis_key(loaded, job.model, job.dataset, job.method)
        if (job.model, job.dataset, job.method) not in groups:
            groups.add((job.model, job.dataset, job.method))
            for call in synthesis_calls(loaded, models[job.model], job.dataset, job.method):
                planned[(call.job_id, call.kind, call.budget)].append(call)
        for call in job_calls(loaded, models[job.model], job, prefaces.get(key)):
            planned[(call.job_id, call.kind, call.budget)].append(call)
    return planned


def test_every_call_the_run_makes_is_a_planned_call(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, MANIFEST)
    assert main(["run", str(path), "--yes", "--plain", "--no-report"]) == 0
    loaded = load_manifest(path)
    records = list(iter_records(tmp_path / "ledgers" / "planned"))
    prefaces = {r.key: r.text for r in records if isinstance(r, Synthesis)}
    attempts = [r for r in records if isinstance(r, Attempt)]
    planned = planned_for_run(loaded, prefaces)

    made: Counter[Key] = Counter()
    for a in attempts:
        key = (a.job_id, a.kind, a.budget)
        assert key in planned, f"the run made a call the planner does not know: {key}"
        (call,) = planned[key]
        made[key] += 1
        assert a.model == call.model and a.max_output_tokens == call.request.max_output_tokens, key
        # a forced answer's prompt holds its cut and LEAP's the pool's mistakes: the plan has them empty;
        # those are the unseeded calls (traces and hidden-reasoning calls carry the sample's seed)
        if call.request.seed is None:
            assert a.input_tokens_counted >= call.prompt_tokens, key
        else:
            assert a.input_tokens_counted == call.prompt_tokens, key
    assert all(count == 1 for count in made.values())  # no faults: no retries

    # what was planned and not made: exactly the answers that a trace ending early let it reuse
    reused = {(s.job_id, "answer", s.budget) for s in records if isinstance(s, Snapshot) and s.reused and s.budget}
    assert set(planned) - set(made) == reused
    # Anthropic's thinking budget is raised to its minimum; the others think up to the last budget
    traces = {a.model: a for a in attempts if a.kind == "trace"}
    assert traces["summarised"].max_output_tokens == 1024 + loaded.manifest.models["summarised"].trace_answer_tokens
    assert traces["content"].max_output_tokens == 768 and traces["raw"].max_output_tokens == 768 + 512
    assert "hidden" not in traces  # hidden reasoning: one call per budget, nothing to cut


def test_the_estimate_counts_the_planned_calls(tmp_path: Path) -> None:
    loaded = load_manifest(write_manifest(tmp_path, MANIFEST))
    groups = count_prompts(loaded)
    models = plan_models(loaded)
    for (model, dataset, method), group in groups.items():
        jobs = [j for j in expand_jobs(loaded) if (j.model, j.dataset, j.method) == (model, dataset, method)]
        first = job_calls(loaded, models[model], jobs[0], None)
        assert group.jobs == len(jobs)
        assert group.trace_cap == first[0].request.max_output_tokens
        assert group.synthesis == synthesis_calls(loaded, models[model], dataset, method)
