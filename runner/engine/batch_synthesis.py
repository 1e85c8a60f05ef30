"""Batch mode's calls, and PDP / LEAP synthesis through them.

The call helpers are `runner.engine.calling`'s shapes sent through the batch engine: a trace
whose whole text feeds the budget tokenizer (`batch_trace`), a call whose whole output is the
answer (`batch_ask`), and a forced answer graded (`batch_answer`); each is transcribed as its
streamed twin is.

`BatchSynthesis` builds a group's preface as `runner.engine.synthesis` does, in batches: every
pool sample's trace, then every one's forced answer, then LEAP's principles call. The first job
of a group builds it; the others wait at a gate, which holds no batch back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from runner.config import calls
from runner.config.calls import PoolSample
from runner.config.manifest import LoadedManifest
from runner.engine.batches import BatchAnswer, BatchEngine, Gate
from runner.engine.calling import ANSWER_PROMPT_SLACK, ModelContext, Owner, TraceResult, note_failure, spec
from runner.engine.consumers import AnswerConsumer, TraceConsumer
from runner.engine.lane import CallResult, RecordSink
from runner.engine.synthesis import stage_inputs, stage_record
from runner.ledger.prices import batch_rates, worst_case_cost
from runner.ledger.records import Synthesis
from runner.tasks.base import Grade, Rendered, Task
from runner.tasks.methods import MethodStrategy, PoolTrace
from runner.types import CallKind, ChatRequest, Content, Reasoning

Consumer = TraceConsumer | AnswerConsumer


def _feed(answer: BatchAnswer, consumer: Consumer) -> None:
    for event in answer.events:
        if isinstance(event, Reasoning):
            consumer.on_reasoning(event.text)
        elif isinstance(event, Content):
            consumer.on_content(event.text)


def _result(answer: BatchAnswer, consumer: Consumer) -> CallResult:
    return CallResult(consumer, answer.usage, answer.finish, answer.attempts, answer.usd, answer.call_id)


async def batch_trace(
    engine: BatchEngine,
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    chat: ChatRequest,
    budgets: tuple[int, ...],
    task: Task,
    rendered: Rendered,
) -> TraceResult:
    """A trace as one batch request, cut at every budget from its whole text.

    It commits its job to one forced answer per budget: their worst case (at batch prices) is
    reserved with it, as a streamed trace's is.
    """
    price = batch_rates(ctx.price) or ctx.price
    answer_prompt = calls.answer_prompt_tokens(ctx.plan, task, rendered)
    cap = calls.answer_cap(ctx.plan, task)
    commits = sum(worst_case_cost(price, answer_prompt + b + ANSWER_PROMPT_SLACK, cap) for b in budgets)
    call = spec(ctx, owner, kind, chat, commits_usd=commits)
    answer = await engine.call(ctx.plan.config.provider, call)
    consumer = TraceConsumer(ctx.plan.encoding, budgets, calls.traced_channel(ctx.plan))
    _feed(answer, consumer)
    consumer.output_tokens_counted()  # finalises the cuts
    ctx.transcripts.trace(owner, call, _result(answer, consumer), consumer)
    reasoning = answer.usage.reasoning_tokens if answer.usage else None
    return TraceResult(consumer=consumer, finish=answer.finish, provider_reasoning=reasoning)


async def batch_ask(
    engine: BatchEngine,
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    chat: ChatRequest,
    budget: int | None = None,
    cut: str = "",
) -> tuple[CallResult, AnswerConsumer]:
    """One batch request whose whole output is the answer."""
    call = spec(ctx, owner, kind, chat, budget)
    answer = await engine.call(ctx.plan.config.provider, call)
    consumer = AnswerConsumer(ctx.plan.encoding)
    _feed(answer, consumer)
    result = _result(answer, consumer)
    ctx.transcripts.answer(owner, call, result, consumer, cut)
    return result, consumer


async def batch_answer(
    engine: BatchEngine,
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    task: Task,
    rendered: Rendered,
    partial: str,
    budget: int,
    place: calls.AnswerPlace = calls.AnswerPlace(),
) -> Grade:
    """Force an answer from the trace cut at ``budget`` (a batch request) and grade it."""
    chat = calls.answer_request(ctx.plan, task, rendered, partial, place)
    result, answer = await batch_ask(engine, ctx, owner, kind, chat, budget, cut=partial)
    grade = task.grade(answer.text, rendered)
    ctx.transcripts.grade(owner, result.call_id, budget, grade, rendered.gold)
    return grade


class BatchSynthesis:
    """Builds each group's preface through batches, writing a `Synthesis` record once per group."""

    def __init__(
        self,
        loaded: LoadedManifest,
        models: dict[str, ModelContext],
        ledger: RecordSink,
        cache: dict[str, Synthesis],
        engine: BatchEngine,
    ) -> None:
        self.loaded, self.models, self.ledger, self.cache, self.engine = loaded, models, ledger, cache, engine
        self._gates: dict[str, Gate] = {}
        self._failed: dict[str, BaseException] = {}

    async def preface(self, model: str, dataset: str, method: str) -> str:
        """The group's preface, built by its first job; the others wait for it."""
        key = calls.synthesis_key(self.loaded, model, dataset, method)
        if key in self.cache:
            return self.cache[key].text
        gate = self._gates.get(key)
        if gate is not None:
            await gate.wait()
            if key in self.cache:
                return self.cache[key].text
            raise self._failed[key]
        gate = self._gates[key] = self.engine.gate()
        stage = Owner(f"synthesis:{key}", uuid.uuid4().hex[:12])
        try:
            built = await self._build(key, stage.instance, model, dataset, method)
        except BaseException as exc:
            self._failed[key] = exc
            note_failure(self.ledger, "synthesis_failed", stage, exc)
            raise
        finally:
            gate.open()
        self.cache[key] = built
        self.ledger.append(built)
        return built.text

    async def _build(self, key: str, instance: str, model: str, dataset: str, method_key: str) -> Synthesis:
        ctx = self.models[model]
        inputs = stage_inputs(self.loaded, dataset, method_key)
        task, method = inputs.task, inputs.method
        traces: list[PoolTrace] = []

        def sample(one: PoolSample) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                owner = Owner(one.job_id, instance)
                traces.append(await self._pool_trace(ctx, task, method, owner, one, inputs.budget))

            return run

        await self.engine.gather([sample(one) for one in calls.pool_samples(self.loaded, key, dataset, method_key)])

        async def principles(mistakes: list[PoolTrace]) -> str:
            chat = calls.principles_request(ctx.plan, method.principle_messages(task, mistakes))
            owner = Owner(calls.principles_job_id(key), instance)
            _, answer = await batch_ask(self.engine, ctx, owner, "synthesis", chat)
            return answer.text

        group = (model, dataset, method_key)
        return await stage_record(key, instance, group, inputs, traces, principles)

    async def _pool_trace(
        self, ctx: ModelContext, task: Task, method: MethodStrategy, owner: Owner, one: PoolSample, budget: int
    ) -> PoolTrace:
        """One pool sample cut at the synthesis budget, with its graded forced answer."""
        rendered = task.render(one.problem, one.seed)
        messages = method.trace_messages(task, rendered, None)
        try:
            if ctx.plan.fidelity == "hidden":
                chat = calls.hidden_request(ctx.plan, messages, budget, one.seed)
                result, answer = await batch_ask(self.engine, ctx, owner, "synthesis", chat, budget)
                text = answer.text
                grade = task.grade(text, rendered)
                ctx.transcripts.grade(owner, result.call_id, budget, grade, rendered.gold)
            else:
                shared = calls.trace_shared_prefix(method, messages, rendered) if ctx.plan.cache_aware else 0
                chat = calls.batch_trace_request(ctx.plan, messages, (budget,), one.seed, shared)
                trace = await batch_trace(self.engine, ctx, owner, "synthesis", chat, (budget,), task, rendered)
                text = trace.consumer.cuts[budget].text
                place = calls.AnswerPlace(lead_cached=calls.trace_is_lead(task, rendered, messages))
                grade = await batch_answer(self.engine, ctx, owner, "synthesis", task, rendered, text, budget, place)
        finally:  # what the trace reserved for its answer and did not draw goes back to the cap
            self.engine.spend.release(owner)
        await ctx.transcripts.settle(owner)
        return PoolTrace(
            problem_id=one.problem.id,
            rendered_question=rendered.question,
            trace_text=text,
            answer=grade.answer,
            score=grade.score,
            gold=rendered.gold,
        )
