"""Batch mode's schedule of a job (``run.mode = "batch"``): its trace as one batch request, cut at
every budget from the whole text, then one forced answer per distinct cut as requests of the
next batch; graded and ledgered as in stream mode.

The trace request is `runner.config.calls.batch_trace_request`: nothing can cut a batch request
at its last budget, so its output cap is that budget (and a small margin, so that the cut there
is final). Its whole text goes through the same `TraceConsumer` and budget tokenizer a stream
feeds, so the cuts are exactly those of the same text streamed. The answers keep the run's
prompt layout and its cache points, in budget order within the batch (Anthropic's batch
discount stacks with prompt caching). A hidden-reasoning model makes one request per budget;
PDP / LEAP synthesis goes the same way (`BatchSynthesis`): the pool's traces, then their answers,
then LEAP's principles, then the group's jobs.

The calls go through `runner.engine.batches.BatchEngine`; this module only decides what they are,
as `runner.engine.pipeline` does for streamed jobs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from runner.config import calls
from runner.config.kinds import batch_interface, served_by_simulator
from runner.config.manifest import LoadedManifest
from runner.config.plan import Job, get_task
from runner.engine.answers import Grades
from runner.engine.batch_submission import Lane as BatchLane
from runner.engine.batch_synthesis import BatchSynthesis, batch_answer, batch_ask, batch_trace
from runner.engine.batches import BatchEngine, ModelRates
from runner.engine.calling import ModelContext, Owner
from runner.engine.lane import Lane, RecordSink
from runner.engine.pipeline import JobOutcome, Pipeline, _full_trace_grade, _Graded
from runner.engine.spend import SpendGuard
from runner.engine.transcribe import NO_TRANSCRIPTS, Transcriber
from runner.ledger.batch_state import batch_history
from runner.ledger.prices import batch_rates
from runner.ledger.records import JobDone, Synthesis
from runner.providers.registry import make_batch_client
from runner.tasks.base import Grade, Rendered, Task
from runner.tasks.methods import MethodStrategy, get_method
from runner.types import Message


class BatchPipeline(Pipeline):
    """Runs jobs through the batch engine, writing records to the ledger as `Pipeline` does."""

    def __init__(
        self,
        loaded: LoadedManifest,
        models: dict[str, ModelContext],
        ledger: RecordSink,
        synthesis_cache: dict[str, Synthesis],
        engine: BatchEngine,
        on_job_done: Callable[[JobDone], None] = lambda _d: None,
        transcripts: Transcriber = NO_TRANSCRIPTS,
    ) -> None:
        super().__init__(loaded, models, ledger, synthesis_cache, on_job_done, transcripts)
        self.engine = engine
        self.batch_synthesis = BatchSynthesis(loaded, models, ledger, synthesis_cache, engine)

    async def _execute(self, job: Job, owner: Owner) -> JobOutcome:
        """One execution of ``job`` through the batches (`Pipeline.run_job` notes it if it fails)."""
        ctx = self.models[job.model]
        task = get_task(self.loaded.manifest.datasets[job.dataset].kind)
        params = self.loaded.manifest.methods[job.method]
        method = get_method(params.kind, params)
        preface = None
        if method.needs_synthesis:
            preface = await self.batch_synthesis.preface(job.model, job.dataset, job.method)
        rendered = task.render(job.problem, job.seed)
        messages = method.trace_messages(task, rendered, preface)
        self.transcripts.job(owner, job, ctx.plan.fidelity, rendered.gold, preface)
        try:
            if ctx.plan.fidelity == "hidden":
                graded = await self._hidden(job, owner, ctx, task, rendered, messages)
            else:
                graded = await self._traced_batch(job, owner, ctx, task, method, rendered, messages)
        finally:  # what the trace reserved for answers it never asked goes back to the cap
            self.engine.spend.release(owner)
        await self.transcripts.settle(owner)
        return self._record(job, owner.instance, ctx, graded)

    async def _traced_batch(
        self,
        job: Job,
        owner: Owner,
        ctx: ModelContext,
        task: Task,
        method: MethodStrategy,
        rendered: Rendered,
        messages: tuple[Message, ...],
    ) -> _Graded:
        plan = ctx.plan
        shared = calls.trace_shared_prefix(method, messages, rendered) if plan.cache_aware else 0
        chat = calls.batch_trace_request(plan, messages, job.budgets, job.seed, shared)
        trace = await batch_trace(self.engine, ctx, owner, "trace", chat, job.budgets, task, rendered)
        cuts = [trace.consumer.cuts[b] for b in job.budgets]
        distinct = list({cut.text: cut for cut in reversed(cuts)}.values())[::-1]  # ascending, first budget each
        lead = calls.trace_is_lead(task, rendered, messages)
        answered: dict[str, Grade] = {}

        def answer(i: int) -> Callable[[], Awaitable[None]]:
            cut = distinct[i]
            place = calls.AnswerPlace(
                lead_cached=lead,
                previous_cut=distinct[i - 1].text if i else None,
                followed=i < len(distinct) - 1,
            )

            async def one() -> None:
                answered[cut.text] = await batch_answer(
                    self.engine, ctx, owner, "answer", task, rendered, cut.text, cut.budget, place
                )

            return one

        await self.engine.gather([answer(i) for i in range(len(distinct))])
        grades: Grades = {}
        first: dict[str, int] = {}
        for b in job.budgets:
            text = trace.consumer.cuts[b].text
            first.setdefault(text, b)
            grades[b] = (answered[text], first[text] != b)
        return _Graded(
            grades=grades,
            tokens={b: trace.consumer.cuts[b].tokens for b in job.budgets},
            finish=trace.finish,
            full=_full_trace_grade(task, rendered, trace, grades, job.budgets),
            provider_reasoning=trace.provider_reasoning,
        )

    async def _hidden(
        self, job: Job, owner: Owner, ctx: ModelContext, task: Task, rendered: Rendered, messages: tuple[Message, ...]
    ) -> _Graded:
        """Hidden reasoning: one batch request per budget, its output cap set to the budget."""
        grades: Grades = {}
        tokens: dict[int, int] = {}

        def at(budget: int) -> Callable[[], Awaitable[None]]:
            async def one() -> None:
                chat = calls.hidden_request(ctx.plan, messages, budget, job.seed)
                result, answer = await batch_ask(self.engine, ctx, owner, "answer", chat, budget)
                grade = task.grade(answer.text, rendered)
                ctx.transcripts.grade(owner, result.call_id, budget, grade, rendered.gold)
                grades[budget] = (grade, False)
                used = result.usage.output_tokens if result.usage else answer.output_tokens_counted()[0]
                tokens[budget] = min(used, budget)

            return one

        await self.engine.gather([at(b) for b in job.budgets])
        last = job.budgets[-1]
        ordered = {b: grades[b] for b in job.budgets}
        return _Graded(
            ordered, {b: tokens[b] for b in job.budgets}, "hidden", (grades[last][0], tokens[last], True), None
        )


MIN_POLL_S = 0.02  # the fastest a simulated provider's batches are polled


def open_batch_engine(
    loaded: LoadedManifest,
    lanes: dict[str, Lane],
    models: dict[str, ModelContext],
    ledger: RecordSink,
    spend: SpendGuard,
    run_dir: Path,
) -> BatchEngine:
    """The batch engine of a run: each lane's batch client over its adapter, each model's batch
    rates, and the run folder's batches so far (a resume adopts the unfinished ones)."""
    m = loaded.manifest
    batch_lanes: dict[str, BatchLane] = {}
    interfaces: dict[str, str] = {}
    for name, lane in lanes.items():
        provider = m.providers[name]
        interface = batch_interface(provider.kind)
        assert interface is not None, "the manifest check refuses batch mode on a kind with no batch interface"
        poll = m.run.batch_poll_s
        if served_by_simulator(provider):  # the simulator's batches run at its time scale
            poll = max(MIN_POLL_S, poll * m.simulator.time_scale)
        batch_lanes[name] = BatchLane(name, make_batch_client(interface, lane.adapter), lane.session, poll)
        interfaces[name] = interface
    rates = {key: ModelRates(batch_rates(ctx.price) or ctx.price, ctx.plan.encoding) for key, ctx in models.items()}
    max_attempts = {name: m.providers[name].max_attempts for name in lanes}
    history = batch_history(run_dir)
    return BatchEngine(batch_lanes, rates, ledger, spend, history, max_attempts, interfaces, run_id=run_dir.name)


__all__ = ["BatchPipeline", "open_batch_engine"]
