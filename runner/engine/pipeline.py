"""One job, start to finish: stream a trace, cut it at every budget, force an answer per cut,
grade, and ledger the snapshots. Plus the once-per-group synthesis stage of PDP / LEAP.

Answers are only requested for distinct cuts: when a trace ends before a budget, that budget's
cut equals the previous one, and its answer is reused (marked ``reused``) instead of paid again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import tiktoken

from runner.config.manifest import LoadedManifest, Model
from runner.config.plan import Job, get_task, stable_hash, synthesis_budget, synthesis_pool
from runner.engine.consumers import AnswerConsumer, TraceConsumer
from runner.engine.lane import CallResult, CallSpec, Lane, RecordSink
from runner.ledger.prices import ModelPrice, worst_case_cost
from runner.ledger.records import CallKind, JobDone, Snapshot, Synthesis
from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.methods import MethodStrategy, PoolTrace, answer_messages, get_method
from runner.tokens.count import count_chat_tokens
from runner.types import ChatRequest, Message


@dataclass
class ModelContext:
    key: str
    config: Model
    lane: Lane
    price: ModelPrice
    encoding: tiktoken.Encoding
    approximate: bool
    fidelity: str


@dataclass
class JobOutcome:
    snapshots: list[Snapshot]
    done: JobDone


class Pipeline:
    """Runs jobs and synthesis stages against the lanes, writing records to the ledger."""

    def __init__(
        self,
        loaded: LoadedManifest,
        models: dict[str, ModelContext],
        ledger: RecordSink,
        synthesis_cache: dict[str, Synthesis],
        on_job_done: Callable[[JobDone], None] = lambda _d: None,
    ) -> None:
        self.loaded = loaded
        self.models = models
        self.ledger = ledger
        self.synthesis_cache = synthesis_cache
        self.on_job_done = on_job_done
        self._synthesis_locks: dict[str, anyio.Lock] = {}

    # ---- the evaluated job -------------------------------------------------------------

    async def run_job(self, job: Job) -> JobOutcome:
        ctx = self.models[job.model]
        task = get_task(self.loaded.manifest.datasets[job.dataset].kind)
        params = self.loaded.manifest.methods[job.method]
        method = get_method(params.kind, params)
        preface = await self.preface_for(job.model, job.dataset, job.method, method, task)
        rendered = task.render(job.problem, job.seed)
        messages = method.trace_messages(task, rendered, preface)
        instance = uuid.uuid4().hex[:12]
        if ctx.fidelity == "hidden":
            grades, tokens, finish, own = await self._hidden_budgets(job, ctx, task, rendered, messages)
            provider_reasoning = None
        else:
            trace = await self._trace(job.job_id, ctx, messages, job.budgets, job.seed, "trace")
            grades, tokens = await self._answer_cuts(job.job_id, ctx, task, rendered, trace, job.budgets)
            finish = trace.finish
            own = self._full_trace_grade(task, rendered, trace, grades, job.budgets)
            provider_reasoning = trace.provider_reasoning
        full_grade, full_tokens, full_reused = own
        cuts = [(b, grade, tokens[b], reused) for b, (grade, reused) in grades.items()]
        snapshots = [
            snapshot_of(job, instance, budget, grade, n_tokens, reused)
            for budget, grade, n_tokens, reused in [*cuts, (None, full_grade, full_tokens, full_reused)]
        ]
        done = JobDone(
            job_id=job.job_id,
            instance=instance,
            model=job.model,
            dataset=job.dataset,
            problem_id=job.problem.id,
            method=job.method,
            sample=job.sample,
            fidelity=ctx.fidelity,
            trace_tokens=max(tokens.values()),
            trace_finish=finish,
            provider_reasoning_tokens=provider_reasoning,
            approximate_tokens=ctx.approximate,
        )
        for snapshot in snapshots:
            self.ledger.append(snapshot)
        self.ledger.append(done)
        self.on_job_done(done)
        return JobOutcome(snapshots=snapshots, done=done)

    async def _trace(
        self,
        job_id: str,
        ctx: ModelContext,
        messages: tuple[Message, ...],
        budgets: tuple[int, ...],
        seed: int,
        kind: CallKind,
    ) -> TraceResult:
        traced = "content" if ctx.fidelity == "content" else "reasoning"
        if traced == "content":
            request = self._request(ctx, messages, budgets[-1], seed)
        else:
            # protocols with a thinking budget (Anthropic, Gemini, llama.cpp) need it switched on,
            # sized to the last budget; the cap leaves room for the answer after the thinking
            thinking = max(budgets[-1], ctx.lane.adapter.min_thinking_budget)
            cap = thinking + ctx.config.trace_answer_tokens
            request = self._request(ctx, messages, cap, seed, reasoning_budget=thinking)
        prompt_tokens = count_chat_tokens(ctx.encoding, messages)
        # admitting a trace commits its job to one forced answer per budget: they must fit the cap too
        answer_cap = max(ctx.config.answer_max_tokens, 256)
        commits = sum(worst_case_cost(ctx.price, prompt_tokens + b + 64, answer_cap) for b in budgets)
        spec = CallSpec(
            job_id=job_id,
            kind=kind,
            model=ctx.key,
            request=request,
            prompt_tokens=prompt_tokens,
            price=ctx.price,
            commits_usd=commits,
        )
        result = await ctx.lane.call(spec, lambda: TraceConsumer(ctx.encoding, budgets, traced))
        consumer = result.consumer
        assert isinstance(consumer, TraceConsumer)
        consumer.output_tokens_counted()
        reasoning = result.usage.reasoning_tokens if result.usage else None
        return TraceResult(consumer=consumer, finish=result.finish, provider_reasoning=reasoning)

    async def _answer_cuts(
        self,
        job_id: str,
        ctx: ModelContext,
        task: Task,
        rendered: Rendered,
        trace: TraceResult,
        budgets: tuple[int, ...],
    ) -> tuple[dict[int, tuple[Grade, bool]], dict[int, int]]:
        cuts = trace.consumer.cuts
        tokens = {b: cuts[b].tokens for b in budgets}
        distinct: dict[str, int] = {}  # cut text -> first budget with it
        for b in budgets:
            distinct.setdefault(cuts[b].text, b)
        answered: dict[int, Grade] = {}

        async def answer(budget: int) -> None:
            answered[budget] = await self._forced_answer(job_id, ctx, task, rendered, cuts[budget].text, budget)

        async with anyio.create_task_group() as tg:
            for budget in distinct.values():
                tg.start_soon(answer, budget)
        grades = {b: (answered[distinct[cuts[b].text]], distinct[cuts[b].text] != b) for b in budgets}
        return grades, tokens

    async def _forced_answer(
        self,
        job_id: str,
        ctx: ModelContext,
        task: Task,
        rendered: Rendered,
        partial: str,
        budget: int,
        kind: CallKind = "answer",
    ) -> Grade:
        messages = answer_messages(task, rendered, partial)
        cap = max(ctx.config.answer_max_tokens, task.answer_max_tokens)
        _result, answer = await self._ask(ctx, job_id, kind, messages, cap, None, budget)
        return task.grade(answer.text, rendered)

    def _full_trace_grade(
        self,
        task: Task,
        rendered: Rendered,
        trace: TraceResult,
        grades: dict[int, tuple[Grade, bool]],
        budgets: tuple[int, ...],
    ) -> tuple[Grade, int, bool]:
        """The untruncated trace's own answer when it ended by itself; else the last budget's."""
        consumer = trace.consumer
        last_grade = grades[budgets[-1]][0]
        if trace.finish in ("stop",):
            own_text = consumer.answer_text if consumer.traced == "reasoning" else consumer.tokenizer.text
            if own_text.strip():
                return task.grade(own_text, rendered), consumer.tokenizer.count, False
        return last_grade, consumer.cuts[budgets[-1]].tokens, True

    async def _hidden_budgets(
        self,
        job: Job,
        ctx: ModelContext,
        task: Task,
        rendered: Rendered,
        messages: tuple[Message, ...],
    ) -> tuple[dict[int, tuple[Grade, bool]], dict[int, int], str, tuple[Grade, int, bool]]:
        """Hidden reasoning: one call per budget with the output cap set to it (flagged in reports)."""
        grades: dict[int, tuple[Grade, bool]] = {}
        tokens: dict[int, int] = {}

        async def one(budget: int) -> None:
            result, answer = await self._ask(ctx, job.job_id, "answer", messages, budget, job.seed, budget)
            grades[budget] = (task.grade(answer.text, rendered), False)
            used = result.usage.output_tokens if result.usage else answer.output_tokens_counted()[0]
            tokens[budget] = min(used, budget)

        async with anyio.create_task_group() as tg:
            for budget in job.budgets:
                tg.start_soon(one, budget)
        last = job.budgets[-1]
        return grades, tokens, "hidden", (grades[last][0], tokens[last], True)

    async def _ask(
        self,
        ctx: ModelContext,
        job_id: str,
        kind: CallKind,
        messages: tuple[Message, ...],
        cap: int,
        seed: int | None,
        budget: int | None = None,
    ) -> tuple[CallResult, AnswerConsumer]:
        """One call whose whole output is the answer (forced answers, hidden budgets, principles)."""
        spec = CallSpec(
            job_id=job_id,
            kind=kind,
            model=ctx.key,
            request=self._request(ctx, messages, cap, seed),
            prompt_tokens=count_chat_tokens(ctx.encoding, messages),
            price=ctx.price,
            budget=budget,
        )
        result = await ctx.lane.call(spec, lambda: AnswerConsumer(ctx.encoding))
        assert isinstance(result.consumer, AnswerConsumer)
        return result, result.consumer

    def _request(
        self,
        ctx: ModelContext,
        messages: tuple[Message, ...],
        cap: int,
        seed: int | None,
        reasoning_budget: int | None = None,
    ) -> ChatRequest:
        return ChatRequest(
            model=ctx.config.model,
            messages=messages,
            max_output_tokens=cap,
            temperature=ctx.config.temperature,
            seed=seed,
            reasoning_effort=ctx.config.reasoning_effort,
            reasoning_budget=reasoning_budget,
        )

    # ---- synthesis (PDP / PDP+ / LEAP) --------------------------------------------------------

    def synthesis_key(self, model: str, dataset: str, method: str) -> str:
        from runner.config.plan import method_definition, model_definition

        return stable_hash(
            {
                "model": model_definition(self.loaded, model),
                "method": method_definition(self.loaded, method, dataset, model),
                "dataset": dataset,
            }
        )

    async def preface_for(
        self, model: str, dataset: str, method_key: str, method: MethodStrategy, task: Task
    ) -> str | None:
        if not method.needs_synthesis:
            return None
        key = self.synthesis_key(model, dataset, method_key)
        lock = self._synthesis_locks.setdefault(key, anyio.Lock())
        async with lock:  # the first job of the group builds it; the others wait and reuse it
            cached = self.synthesis_cache.get(key)
            if cached is None:
                cached = await self._synthesize(key, model, dataset, method_key, method, task)
                self.synthesis_cache[key] = cached
                self.ledger.append(cached)
        return cached.text

    async def _synthesize(
        self, key: str, model: str, dataset: str, method_key: str, method: MethodStrategy, task: Task
    ) -> Synthesis:
        ctx = self.models[model]
        params = self.loaded.manifest.methods[method_key]
        budget = synthesis_budget(self.loaded, method_key, dataset)
        pool = synthesis_pool(self.loaded, dataset)
        traces: list[PoolTrace] = []

        async def sample(problem: Problem, k: int) -> None:
            job_id = f"synthesis:{key}:{problem.id}:{k}"
            seed = int(stable_hash([key, problem.id, k])[:7], 16)
            rendered = task.render(problem, seed)
            messages = method.trace_messages(task, rendered, None)
            if ctx.fidelity == "hidden":
                _result, answer = await self._ask(ctx, job_id, "synthesis", messages, budget, seed, budget)
                text = answer.text
                grade = task.grade(text, rendered)
            else:
                trace = await self._trace(job_id, ctx, messages, (budget,), seed, "synthesis")
                text = trace.consumer.cuts[budget].text
                grade = await self._forced_answer(job_id, ctx, task, rendered, text, budget, kind="synthesis")
            traces.append(
                PoolTrace(
                    problem_id=problem.id,
                    rendered_question=rendered.question,
                    trace_text=text,
                    answer=grade.answer,
                    score=grade.score,
                    gold=rendered.gold,
                )
            )

        async with anyio.create_task_group() as tg:
            for problem in pool:
                for k in range(params.k):
                    tg.start_soon(sample, problem, k)
        traces.sort(key=lambda t: (pool_order(pool, t.problem_id), t.trace_text))
        principles: str | None = None
        if params.kind == "leap":
            principles = await self._leap_principles(key, ctx, task, method, traces)
        examples, text = (
            method.build_preface(task, traces) if principles is None else ([{"principles": principles}], principles)
        )
        return Synthesis(
            key=key,
            model=model,
            dataset=dataset,
            method=method_key,
            pool_problem_ids=[p.id for p in pool],
            examples=examples,
            text=text,
        )

    async def _leap_principles(
        self, key: str, ctx: ModelContext, task: Task, method: MethodStrategy, traces: list[PoolTrace]
    ) -> str:
        mistakes = [t for t in traces if t.score < 1.0]
        messages = method.principle_messages(task, mistakes)
        _result, answer = await self._ask(ctx, f"synthesis:{key}:principles", "synthesis", messages, 1024, None)
        return answer.text


@dataclass
class TraceResult:
    consumer: TraceConsumer
    finish: str
    provider_reasoning: int | None


def snapshot_of(job: Job, instance: str, budget: int | None, grade: Grade, tokens: int, reused: bool) -> Snapshot:
    """The ledger record of one graded cut (``budget`` None: the full trace)."""
    return Snapshot(
        job_id=job.job_id,
        instance=instance,
        model=job.model,
        dataset=job.dataset,
        problem_id=job.problem.id,
        method=job.method,
        sample=job.sample,
        budget=budget,
        tokens=tokens,
        answer=grade.answer,
        score=grade.score,
        exact=grade.exact,
        reused=reused,
    )


def pool_order(pool: list[Problem], problem_id: str) -> int:
    for i, p in enumerate(pool):
        if p.id == problem_id:
            return i
    return len(pool)


__all__ = ["JobOutcome", "ModelContext", "Pipeline"]
