"""The answer step of a traced job: one forced answer per distinct cut of the trace, graded.

When the answers are sent is ``run.answers`` (docs/caching.md):

- ``at_cut`` (`answer_at_cuts`): each cut's answer goes out as soon as the cut is final, while the
  trace goes on, in ascending budget order, each once the previous answer has started producing
  output. The provider has then processed (and cached) the previous prompt, which the next one
  repeats up to its own, longer cut: that prefix is billed at the cached rate.
- ``after_trace`` (`answer_after_trace`): once the trace has ended, every distinct cut's answer at
  once, in the standalone layout of earlier versions.

Both stream the trace and return the same `Grades`; a budget whose cut equals an earlier one
reuses its answer. Another schedule (a batch mode) plugs in beside these two.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from runner.config import calls
from runner.engine.calling import ModelContext, Owner, TraceHooks, TraceResult, forced_answer, stream_trace
from runner.tasks.base import Grade, Rendered, Task
from runner.tokens.budget import Cut
from runner.types import ChatRequest

# per budget: its grade and whether that grade was reused from an earlier identical cut
Grades = dict[int, tuple[Grade, bool]]


class TracedJob:
    """One traced job as the answer step sees it."""

    def __init__(
        self,
        ctx: ModelContext,
        owner: Owner,
        task: Task,
        rendered: Rendered,
        budgets: tuple[int, ...],
        lead_cached: bool,
    ) -> None:
        self.ctx, self.owner, self.task, self.rendered, self.budgets = ctx, owner, task, rendered, budgets
        self.lead_cached = lead_cached  # the trace's prompt is its answers' lead (no preface)
        self.answer_prompt = calls.answer_prompt_tokens(ctx.plan, task, rendered)

    async def trace(self, chat: ChatRequest, hooks: TraceHooks) -> TraceResult:
        return await stream_trace(
            self.ctx, self.owner, "trace", chat, self.budgets, self.task, self.answer_prompt, hooks
        )

    async def answer(self, cut: Cut, place: calls.AnswerPlace, on_output: Callable[[], None] | None = None) -> Grade:
        return await forced_answer(
            self.ctx, self.owner, "answer", self.task, self.rendered, cut.text, cut.budget, place, on_output
        )

    def grades(self, trace: TraceResult, answered: dict[str, Grade]) -> Grades:
        """Every budget's grade from the answers by cut text; a later budget with the same cut reuses."""
        first: dict[str, int] = {}
        out: Grades = {}
        for b in self.budgets:
            text = trace.consumer.cuts[b].text
            first.setdefault(text, b)
            out[b] = (answered[text], first[text] != b)
        return out


# a job's answer step: stream the trace (its first output reported to the callback), answer its cuts
AnswerSchedule = Callable[[TracedJob, ChatRequest, Callable[[], None] | None], Awaitable[tuple[TraceResult, Grades]]]


async def answer_after_trace(
    job: TracedJob, chat: ChatRequest, on_output: Callable[[], None] | None = None
) -> tuple[TraceResult, Grades]:
    """Stream the trace to its end, then ask every distinct cut at once."""
    trace = await job.trace(chat, TraceHooks(on_output=on_output))
    cuts = [trace.consumer.cuts[b] for b in job.budgets]
    distinct = {cut.text: cut for cut in reversed(cuts)}  # each text with its first budget's cut
    answered: dict[str, Grade] = {}

    async def answer(cut: Cut) -> None:
        answered[cut.text] = await job.answer(cut, calls.AnswerPlace())

    async with anyio.create_task_group() as tg:
        for cut in distinct.values():
            tg.start_soon(answer, cut)
    return trace, job.grades(trace, answered)


async def answer_at_cuts(
    job: TracedJob, chat: ChatRequest, on_output: Callable[[], None] | None = None
) -> tuple[TraceResult, Grades]:
    """Stream the trace and answer each cut as it becomes final (see `AnswerChain`)."""
    chain = AnswerChain(job)
    async with anyio.create_task_group() as tg:
        tg.start_soon(chain.run, tg)
        trace = await job.trace(chat, TraceHooks(new_attempt=chain.new_attempt, on_output=on_output))
        chain.trace_ended(trace)
    return trace, job.grades(trace, chain.answered)


class _Turn:
    """One answer of the chain: its cut's text, and the moment the provider started answering it."""

    def __init__(self, attempt: int, text: str) -> None:
        self.attempt = attempt
        self.text = text
        self.started = anyio.Event()


class AnswerChain:
    """A trace's forced answers, sent as its cuts become final: in budget order, each once the
    previous one has started producing output (or ended, whatever happened to it).

    Cuts come from the trace consumer of each attempt. A cut is final when more text follows it
    (mid-stream) or when the trace has ended well (`trace_ended`); the cuts a failed stream's end
    would make are never answered. A trace attempt that fails and is retried starts a new chain:
    the old attempt's answers in flight finish, and serve a retry whose cut has the same text.
    """

    def __init__(self, job: TracedJob) -> None:
        self.job = job
        self.attempt = 0
        # (attempt, cut, whether an answer with a longer cut will follow it)
        self._send, self._receive = anyio.create_memory_object_stream[tuple[int, Cut, bool]](math.inf)
        self.answered: dict[str, Grade] = {}
        self._asked: set[str] = set()

    def new_attempt(self) -> Callable[[Cut], None]:
        """A trace attempt starts: the callback its consumer hands each mid-stream cut to."""
        self.attempt += 1
        attempt, last = self.attempt, self.job.budgets[-1]

        def on_cut(cut: Cut) -> None:
            # the trace goes on past this cut: unless it is the last budget, a longer cut follows
            self._offer(attempt, cut, cut.budget != last)

        return on_cut

    def trace_ended(self, trace: TraceResult) -> None:
        """The trace ended well: the cuts its end made final come last (all alike), then nothing."""
        for b in self.job.budgets:
            self._offer(self.attempt, trace.consumer.cuts[b], False)
        self._send.close()

    def _offer(self, attempt: int, cut: Cut, followed: bool) -> None:
        try:
            self._send.send_nowait((attempt, cut, followed))
        except anyio.BrokenResourceError:
            # `run` was cancelled (a stop) while the trace still finished: no answer will be asked,
            # and the job is not complete, so a resume asks them
            pass

    async def run(self, tg: TaskGroup) -> None:
        """Start each new cut's answer in ``tg`` once the previous one of its attempt has started."""
        previous: _Turn | None = None
        async with self._receive:
            async for attempt, cut, followed in self._receive:
                if attempt != self.attempt or cut.text in self._asked:
                    continue  # a superseded attempt's cut, or a cut already asked (reused)
                prior = previous if previous is not None and previous.attempt == attempt else None
                if prior is not None:
                    await prior.started.wait()
                turn = _Turn(attempt, cut.text)
                self._asked.add(cut.text)
                place = calls.AnswerPlace(
                    lead_cached=self.job.lead_cached,
                    previous_cut=prior.text if prior is not None else None,
                    followed=followed,
                )
                tg.start_soon(self._answer, cut, place, turn)
                previous = turn

    async def _answer(self, cut: Cut, place: calls.AnswerPlace, turn: _Turn) -> None:
        try:
            self.answered[cut.text] = await self.job.answer(cut, place, turn.started.set)
        finally:
            turn.started.set()  # failed or done before any output: the next answer need not wait


SCHEDULES: dict[str, AnswerSchedule] = {"at_cut": answer_at_cuts, "after_trace": answer_after_trace}

__all__ = ["SCHEDULES", "AnswerChain", "AnswerSchedule", "Grades", "TracedJob", "answer_after_trace", "answer_at_cuts"]
