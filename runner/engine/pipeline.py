"""One job, start to finish: stream a trace, cut it at every budget, force an answer per cut,
grade, and ledger the snapshots.

Answers are only requested for distinct cuts: when a trace ends before a budget, that budget's
cut equals the previous one, and its answer is reused (marked ``reused``) instead of paid again.
When they are sent is the answer step's business (`runner.engine.answers`: at each cut, or after
the trace). A method that needs a preface gets it from the group's synthesis stage
(`runner.engine.synthesis`), and its group's first trace warms that preface in the provider's
cache (`runner.engine.prefixes`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from runner.config import calls
from runner.config.manifest import LoadedManifest
from runner.config.plan import Job, get_task
from runner.engine.answers import SCHEDULES, Grades, TracedJob
from runner.engine.calling import ModelContext, Owner, TraceResult, ask, note_failure
from runner.engine.lane import RecordSink
from runner.engine.prefixes import PrefixWarmup
from runner.engine.synthesis import SynthesisClaims, SynthesisStage
from runner.engine.transcribe import NO_TRANSCRIPTS, Transcriber
from runner.ledger.records import JobDone, Snapshot, Synthesis
from runner.tasks.base import Grade, Rendered, Task
from runner.tasks.methods import MethodStrategy, get_method
from runner.types import Message


@dataclass
class JobOutcome:
    snapshots: list[Snapshot]
    done: JobDone


@dataclass
class _Graded:
    """What a job's calls produced, before it is written down."""

    grades: Grades
    tokens: dict[int, int]
    finish: str
    full: tuple[Grade, int, bool]  # the full trace's grade, its tokens, and whether it is reused
    provider_reasoning: int | None


class Pipeline:
    """Runs jobs against the lanes, writing records to the ledger."""

    def __init__(
        self,
        loaded: LoadedManifest,
        models: dict[str, ModelContext],
        ledger: RecordSink,
        synthesis_cache: dict[str, Synthesis],
        on_job_done: Callable[[JobDone], None] = lambda _d: None,
        transcripts: Transcriber = NO_TRANSCRIPTS,
        claims: SynthesisClaims | None = None,
    ) -> None:
        self.loaded = loaded
        self.transcripts = transcripts
        self.models = models
        self.ledger = ledger
        self.synthesis = SynthesisStage(loaded, models, ledger, synthesis_cache, claims)
        self.warmup = PrefixWarmup()
        self.on_job_done = on_job_done

    async def run_job(self, job: Job) -> JobOutcome:
        """Run one execution of a job; a provider error that fails it is noted with the execution."""
        owner = Owner(job.job_id, uuid.uuid4().hex[:12])
        try:
            return await self._execute(job, owner)
        except Exception as error:
            note_failure(self.ledger, "job_failed", owner, error)
            raise

    async def _execute(self, job: Job, owner: Owner) -> JobOutcome:
        ctx = self.models[job.model]
        task = get_task(self.loaded.manifest.datasets[job.dataset].kind)
        params = self.loaded.manifest.methods[job.method]
        method = get_method(params.kind, params)
        preface = await self.synthesis.preface(job.model, job.dataset, job.method) if method.needs_synthesis else None
        rendered = task.render(job.problem, job.seed)
        messages = method.trace_messages(task, rendered, preface)
        self.transcripts.job(owner, job, ctx.plan.fidelity, rendered.gold, preface)
        if ctx.plan.fidelity == "hidden":
            graded = await _hidden_budgets(job, owner, ctx, task, rendered, messages)
        else:
            lead = calls.trace_is_lead(task, rendered, messages)
            traced = TracedJob(ctx, owner, task, rendered, job.budgets, lead_cached=lead)
            try:
                graded = await self._traced(job, traced, method, messages)
            finally:  # what the trace reserved for answers it never asked goes back to the cap
                ctx.lane.release_commitment(*owner)
        await self.transcripts.settle(owner)  # the transcript is on disk before the ledger says done
        return self._record(job, owner.instance, ctx, graded)

    async def _traced(
        self, job: Job, traced: TracedJob, strategy: MethodStrategy, messages: tuple[Message, ...]
    ) -> _Graded:
        """Stream the trace and answer its cuts on the model's answer schedule (`runner.engine.answers`).

        With a cache-aware schedule the trace marks the prefix it shares (the group's preface, or its
        whole prompt as its answers' lead), and a group's first trace warms its preface (`prefixes`).
        """
        plan = traced.ctx.plan
        shared = calls.trace_shared_prefix(strategy, messages, traced.rendered) if plan.cache_aware else 0
        chat = calls.trace_request(plan, messages, job.budgets, job.seed, shared)
        group = self.synthesis.key(job.model, job.dataset, job.method) if shared and strategy.needs_synthesis else None
        async with self.warmup.turn(group) as on_output:
            trace, grades = await SCHEDULES[plan.answers](traced, chat, on_output)
        return _Graded(
            grades=grades,
            tokens={b: trace.consumer.cuts[b].tokens for b in job.budgets},
            finish=trace.finish,
            full=_full_trace_grade(traced.task, traced.rendered, trace, grades, job.budgets),
            provider_reasoning=trace.provider_reasoning,
        )

    def _record(self, job: Job, instance: str, ctx: ModelContext, graded: _Graded) -> JobOutcome:
        cuts = [(b, grade, graded.tokens[b], reused) for b, (grade, reused) in graded.grades.items()]
        full_grade, full_tokens, full_reused = graded.full
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
            fidelity=ctx.plan.fidelity,
            trace_tokens=max(graded.tokens.values()),
            trace_finish=graded.finish,
            provider_reasoning_tokens=graded.provider_reasoning,
            approximate_tokens=ctx.plan.approximate,
        )
        for snapshot in snapshots:
            self.ledger.append(snapshot)
        self.ledger.append(done)
        self.on_job_done(done)
        return JobOutcome(snapshots=snapshots, done=done)


def _full_trace_grade(
    task: Task, rendered: Rendered, trace: TraceResult, grades: Grades, budgets: tuple[int, ...]
) -> tuple[Grade, int, bool]:
    """The untruncated trace's own answer when it ended by itself; else the last budget's."""
    consumer = trace.consumer
    last_grade = grades[budgets[-1]][0]
    if trace.finish == "stop":
        own_text = consumer.answer_text if consumer.traced == "reasoning" else consumer.tokenizer.text
        if own_text.strip():
            return task.grade(own_text, rendered), consumer.tokenizer.count, False
    return last_grade, consumer.cuts[budgets[-1]].tokens, True


async def _hidden_budgets(
    job: Job, owner: Owner, ctx: ModelContext, task: Task, rendered: Rendered, messages: tuple[Message, ...]
) -> _Graded:
    """Hidden reasoning: one call per budget with the output cap set to it (flagged in reports)."""
    grades: Grades = {}
    tokens: dict[int, int] = {}

    async def one(budget: int) -> None:
        chat = calls.hidden_request(ctx.plan, messages, budget, job.seed)
        result, answer = await ask(ctx, owner, "answer", chat, budget)
        grade = task.grade(answer.text, rendered)
        ctx.transcripts.grade(owner, result.call_id, budget, grade, rendered.gold)
        grades[budget] = (grade, False)
        used = result.usage.output_tokens if result.usage else answer.output_tokens_counted()[0]
        tokens[budget] = min(used, budget)

    async with anyio.create_task_group() as tg:
        for budget in job.budgets:
            tg.start_soon(one, budget)
    last = job.budgets[-1]
    ordered = {b: grades[b] for b in job.budgets}
    return _Graded(ordered, {b: tokens[b] for b in job.budgets}, "hidden", (grades[last][0], tokens[last], True), None)


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


__all__ = ["JobOutcome", "ModelContext", "Pipeline"]
