"""The shapes of call a job makes, on a model's lane: a streamed trace cut at budgets, and a
call whose whole output is the answer (forced answers, hidden budgets, LEAP's principles).

The requests come from `runner.config.calls`; this module only sends them through the lane and
hands back what the consumers collected. Each goes through the model's `Reuser` first
(`runner.engine.reuse`), which serves it from a call already paid for when one is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from runner.config import calls
from runner.config.calls import ModelPlan
from runner.engine.consumers import AnswerConsumer, TraceConsumer
from runner.engine.lane import CallResult, CallSpec, Lane, RecordSink
from runner.engine.reuse import NO_REUSE, Reuser
from runner.engine.transcribe import NO_TRANSCRIPTS, Transcriber
from runner.errors import LaneStopped, ProviderError
from runner.ledger.prices import ModelPrice, worst_case_cost
from runner.ledger.records import Note
from runner.tasks.base import Grade, Rendered, Task
from runner.tokens.budget import Cut
from runner.types import CallKind, ChatRequest

# tokens a cut may gain where it meets the text around it in a forced-answer prompt (spend-cap sizing)
ANSWER_PROMPT_SLACK = 8


class Owner(NamedTuple):
    """Whose call this is: the job (or synthesis sample) and the execution of it, so that a crash's
    or a stop's attempts can be told from those of the execution that completed."""

    job_id: str
    instance: str


def final_failure(error: BaseException) -> ProviderError | None:
    """The provider error that failed an execution (its retries spent, or fatal), if one did.

    A lane stopped by a configuration error, a stop and the spend cap cut executions short
    instead: their spend is lost to interruption, not to failure.
    """
    if isinstance(error, BaseExceptionGroup):
        return next((f for inner in error.exceptions if (f := final_failure(inner)) is not None), None)
    return error if isinstance(error, ProviderError) and not isinstance(error, LaneStopped) else None


def note_failure(ledger: RecordSink, kind: str, owner: Owner, error: BaseException) -> None:
    """Put an execution that failed on record (``job_failed`` / ``synthesis_failed``), so the
    report can tell its spend from that of executions a crash or a stop cut short."""
    failure = final_failure(error)
    if failure is not None:
        message = f"{owner.job_id}: execution {owner.instance} failed: {failure}"
        ledger.append(Note(at=time.time(), kind=kind, message=message, job_id=owner.job_id, instance=owner.instance))


@dataclass
class ModelContext:
    """A model as the engine calls it: its plan, its lane, its price, where its calls are
    transcribed, and the calls already paid for that may stand in for them."""

    plan: ModelPlan
    lane: Lane
    price: ModelPrice
    transcripts: Transcriber = NO_TRANSCRIPTS
    reuse: Reuser = NO_REUSE

    @property
    def key(self) -> str:
        return self.plan.key


@dataclass
class TraceResult:
    consumer: TraceConsumer
    finish: str
    provider_reasoning: int | None


def spec(
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    chat: ChatRequest,
    budget: int | None = None,
    commits_usd: float = 0.0,
) -> CallSpec:
    """A lane call for a planned request."""
    return CallSpec(
        job_id=owner.job_id,
        instance=owner.instance,
        kind=kind,
        model=ctx.key,
        request=chat,
        prompt_tokens=calls.prompt_tokens(ctx.plan, chat),
        price=ctx.price,
        budget=budget,
        commits_usd=commits_usd,
        first_token_timeout=ctx.plan.first_token_s,
        idle_timeout=ctx.plan.idle_s,
    )


class TraceHooks(NamedTuple):
    """What a trace tells the job while it streams (each attempt gets its own ``on_cut``)."""

    new_attempt: Callable[[], Callable[[Cut], None]] | None = None  # a final cut, as soon as it is
    on_output: Callable[[], None] | None = None  # the provider started producing output


async def stream_trace(
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    chat: ChatRequest,
    budgets: tuple[int, ...],
    task: Task,
    answer_prompt: int,
    hooks: TraceHooks = TraceHooks(),
) -> TraceResult:
    """Stream one trace until its last budget's cut is final (or it ends by itself).

    Admitting it commits the job to one forced answer per budget: the spend cap must hold those
    too, so their worst case (``answer_prompt``: the planned answer prompt's tokens with an empty
    cut) travels with the trace's.
    """
    cap = calls.answer_cap(ctx.plan, task)
    commits = tuple(worst_case_cost(ctx.price, answer_prompt + b + ANSWER_PROMPT_SLACK, cap) for b in budgets)
    call = spec(ctx, owner, kind, chat, commits_usd=sum(commits))
    traced = calls.traced_channel(ctx.plan)

    def make_consumer() -> TraceConsumer:
        on_cut = hooks.new_attempt() if hooks.new_attempt is not None else None
        return TraceConsumer(ctx.plan.encoding, budgets, traced, on_cut=on_cut, on_output=hooks.on_output)

    result, reused = await ctx.reuse.stream(ctx.plan, ctx.lane, call, budgets, make_consumer, commits)
    consumer = result.consumer
    assert isinstance(consumer, TraceConsumer)
    consumer.output_tokens_counted()  # finalises the cuts
    ctx.transcripts.trace(owner, call, result, consumer, reused)
    reasoning = result.usage.reasoning_tokens if result.usage else None
    return TraceResult(consumer=consumer, finish=result.finish, provider_reasoning=reasoning)


async def ask(
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    chat: ChatRequest,
    budget: int | None = None,
    on_output: Callable[[], None] | None = None,
    cut: str = "",
) -> tuple[CallResult, AnswerConsumer]:
    """One call whose whole output is the answer (``on_output``: called at its first text; ``cut``:
    the trace's cut its prompt holds, if any, for the transcript)."""
    call = spec(ctx, owner, kind, chat, budget)
    result, reused = await ctx.reuse.ask(
        ctx.plan, ctx.lane, call, lambda: AnswerConsumer(ctx.plan.encoding, on_output=on_output)
    )
    assert isinstance(result.consumer, AnswerConsumer)
    ctx.transcripts.answer(owner, call, result, result.consumer, cut, reused)
    return result, result.consumer


async def forced_answer(
    ctx: ModelContext,
    owner: Owner,
    kind: CallKind,
    task: Task,
    rendered: Rendered,
    partial: str,
    budget: int,
    place: calls.AnswerPlace = calls.AnswerPlace(),
    on_output: Callable[[], None] | None = None,
) -> Grade:
    """Force an answer from the trace cut at ``budget`` and grade it."""
    chat = calls.answer_request(ctx.plan, task, rendered, partial, place)
    result, answer = await ask(ctx, owner, kind, chat, budget, on_output, cut=partial)
    grade = task.grade(answer.text, rendered)
    ctx.transcripts.grade(owner, result.call_id, budget, grade, rendered.gold)
    return grade
