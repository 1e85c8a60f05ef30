"""The once-per-group synthesis stage of PDP / PDP(+) / LEAP: sample the held-out pool, grade the
cut traces, and build the preface every job of the group shares.

The first job of a (model, dataset, method) group builds it; the others wait and reuse it; a
resumed run finds it in the ledger. Which calls it makes (pool x k traces at the synthesis
budget, their forced answers, LEAP's principles call) is planned in `runner.config.calls`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import anyio

from runner.config import calls
from runner.config.calls import PoolSample
from runner.config.manifest import LoadedManifest
from runner.config.plan import get_task, synthesis_budget, synthesis_pool
from runner.engine.calling import ModelContext, Owner, ask, forced_answer, note_failure, stream_trace
from runner.engine.lane import RecordSink
from runner.ledger.records import Synthesis
from runner.tasks.base import Problem, Task
from runner.tasks.methods import MethodStrategy, PoolTrace, get_method


class SynthesisClaims(Protocol):
    """Which process builds a group's preface when several share a run (`runner.cluster`): the
    first to claim it; the others get the record it wrote."""

    async def claim(self, key: str) -> Synthesis | None:
        """The group's synthesis if another process built it (waiting while one builds), or None:
        this process builds it."""
        ...

    def dropped(self, key: str) -> None:
        """This process's build failed: another may claim it."""
        ...


class SynthesisStage:
    """Builds and caches each group's preface, writing a `Synthesis` record once per group."""

    def __init__(
        self,
        loaded: LoadedManifest,
        models: dict[str, ModelContext],
        ledger: RecordSink,
        cache: dict[str, Synthesis],
        claims: SynthesisClaims | None = None,
    ) -> None:
        self.loaded = loaded
        self.models = models
        self.ledger = ledger
        self.cache = cache
        self.claims = claims
        self._locks: dict[str, anyio.Lock] = {}

    def key(self, model: str, dataset: str, method: str) -> str:
        return calls.synthesis_key(self.loaded, model, dataset, method)

    async def preface(self, model: str, dataset: str, method: str) -> str:
        """The group's preface, built on first use."""
        key = self.key(model, dataset, method)
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:  # the first job of the group builds it; the others wait and reuse it
            cached = self.cache.get(key)
            if cached is None and self.claims is not None:
                cached = await self.claims.claim(key)  # built by another worker process, or ours to build
                if cached is not None:
                    self.cache[key] = cached
            if cached is None:
                stage = Owner(f"synthesis:{key}", uuid.uuid4().hex[:12])
                try:
                    cached = await self._build(key, stage.instance, model, dataset, method)
                except BaseException as error:
                    if self.claims is not None:
                        self.claims.dropped(key)
                    if isinstance(error, Exception):
                        note_failure(self.ledger, "synthesis_failed", stage, error)
                    raise
                self.cache[key] = cached
                self.ledger.append(cached)
        return cached.text

    async def _build(self, key: str, instance: str, model: str, dataset: str, method_key: str) -> Synthesis:
        ctx = self.models[model]
        inputs = stage_inputs(self.loaded, dataset, method_key)
        task, method = inputs.task, inputs.method
        traces: list[PoolTrace] = []

        async def sample(one: PoolSample) -> None:
            traces.append(await _pool_trace(ctx, task, method, Owner(one.job_id, instance), one, inputs.budget))

        async with anyio.create_task_group() as tg:
            for one in calls.pool_samples(self.loaded, key, dataset, method_key):
                tg.start_soon(sample, one)

        async def principles(mistakes: list[PoolTrace]) -> str:
            chat = calls.principles_request(ctx.plan, method.principle_messages(task, mistakes))
            _result, answer = await ask(ctx, Owner(calls.principles_job_id(key), instance), "synthesis", chat)
            return answer.text

        group = (model, dataset, method_key)
        return await stage_record(key, instance, group, inputs, traces, principles)


class StageInputs(NamedTuple):
    """What a group's synthesis stage works from, streamed or in batches."""

    task: Task
    method: MethodStrategy
    budget: int  # the synthesis budget the pool traces are cut at
    pool: list[Problem]


def stage_inputs(loaded: LoadedManifest, dataset: str, method_key: str) -> StageInputs:
    params = loaded.manifest.methods[method_key]
    return StageInputs(
        task=get_task(loaded.manifest.datasets[dataset].kind),
        method=get_method(params.kind, params),
        budget=synthesis_budget(loaded, method_key, dataset),
        pool=synthesis_pool(loaded, dataset),
    )


async def stage_record(
    key: str,
    instance: str,
    group: tuple[str, str, str],
    inputs: StageInputs,
    traces: list[PoolTrace],
    principles: Callable[[list[PoolTrace]], Awaitable[str]],
) -> Synthesis:
    """The stage's record from its graded pool traces: LEAP's principles drawn from the mistakes
    (``principles`` asks for them), else the method's preface; ``group`` is (model, dataset, method)."""
    traces.sort(key=lambda t: (pool_order(inputs.pool, t.problem_id), t.trace_text))
    if inputs.method.kind == "leap":
        text = await principles([t for t in traces if t.score < 1.0])
        examples: list[dict[str, object]] = [{"principles": text}]
    else:
        examples, text = inputs.method.build_preface(inputs.task, traces)
    model, dataset, method_key = group
    return Synthesis(
        key=key,
        model=model,
        dataset=dataset,
        method=method_key,
        pool_problem_ids=[p.id for p in inputs.pool],
        examples=examples,
        text=text,
        instance=instance,
    )


async def _pool_trace(
    ctx: ModelContext, task: Task, method: MethodStrategy, owner: Owner, one: PoolSample, budget: int
) -> PoolTrace:
    """One pool sample cut at the synthesis budget, with its graded forced answer."""
    rendered = task.render(one.problem, one.seed)
    messages = method.trace_messages(task, rendered, None)
    if ctx.plan.fidelity == "hidden":
        chat = calls.hidden_request(ctx.plan, messages, budget, one.seed)
        result, answer = await ask(ctx, owner, "synthesis", chat, budget)
        text = answer.text
        grade = task.grade(text, rendered)
        ctx.transcripts.grade(owner, result.call_id, budget, grade, rendered.gold)
    else:
        shared = calls.trace_shared_prefix(method, messages, rendered) if ctx.plan.cache_aware else 0
        chat = calls.trace_request(ctx.plan, messages, (budget,), one.seed, shared)
        answer_prompt = calls.answer_prompt_tokens(ctx.plan, task, rendered)
        try:
            trace = await stream_trace(ctx, owner, "synthesis", chat, (budget,), task, answer_prompt)
            text = trace.consumer.cuts[budget].text
            place = calls.AnswerPlace(lead_cached=calls.trace_is_lead(task, rendered, messages))
            grade = await forced_answer(ctx, owner, "synthesis", task, rendered, text, budget, place)
        finally:  # what the trace reserved for its answer and did not draw goes back to the cap
            ctx.lane.release_commitment(*owner)
    await ctx.transcripts.settle(owner)
    return PoolTrace(
        problem_id=one.problem.id,
        rendered_question=rendered.question,
        trace_text=text,
        answer=grade.answer,
        score=grade.score,
        gold=rendered.gold,
    )


def pool_order(pool: list[Problem], problem_id: str) -> int:
    for i, p in enumerate(pool):
        if p.id == problem_id:
            return i
    return len(pool)
