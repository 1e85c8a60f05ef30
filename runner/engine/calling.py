"""The shapes of call a job makes, on a model's lane: a streamed trace cut at budgets, and a
call whose whole output is the answer (forced answers, hidden budgets, LEAP's principles).

The requests come from `runner.config.calls`; this module only sends them through the lane and
hands back what the consumers collected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

from runner.config import calls
from runner.config.calls import ModelPlan
from runner.engine.consumers import AnswerConsumer, TraceConsumer
from runner.engine.lane import CallResult, CallSpec, Lane, RecordSink
from runner.errors import LaneStopped, ProviderError
from runner.ledger.prices import ModelPrice, worst_case_cost
from runner.ledger.records import Note
from runner.tasks.base import Grade, Rendered, Task
from runner.types import CallKind, ChatRequest

# room for the markers and instructions around a cut in a forced-answer prompt (spend-cap sizing)
ANSWER_PROMPT_SLACK = 64


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
    """A model as the engine calls it: its plan, its lane and its price."""

    plan: ModelPlan
    lane: Lane
    price: ModelPrice

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


async def stream_trace(
    ctx: ModelContext, owner: Owner, kind: CallKind, chat: ChatRequest, budgets: tuple[int, ...], task: Task
) -> TraceResult:
    """Stream one trace until its last budget's cut is final (or it ends by itself).

    Admitting it commits the job to one forced answer per budget: the spend cap must hold those
    too, so their worst case travels with the trace's.
    """
    prompt = calls.prompt_tokens(ctx.plan, chat)
    cap = calls.answer_cap(ctx.plan, task)
    commits = sum(worst_case_cost(ctx.price, prompt + b + ANSWER_PROMPT_SLACK, cap) for b in budgets)
    call = spec(ctx, owner, kind, chat, commits_usd=commits)
    traced = calls.traced_channel(ctx.plan)
    result = await ctx.lane.call(call, lambda: TraceConsumer(ctx.plan.encoding, budgets, traced))
    consumer = result.consumer
    assert isinstance(consumer, TraceConsumer)
    consumer.output_tokens_counted()  # finalises the cuts
    reasoning = result.usage.reasoning_tokens if result.usage else None
    return TraceResult(consumer=consumer, finish=result.finish, provider_reasoning=reasoning)


async def ask(
    ctx: ModelContext, owner: Owner, kind: CallKind, chat: ChatRequest, budget: int | None = None
) -> tuple[CallResult, AnswerConsumer]:
    """One call whose whole output is the answer."""
    result = await ctx.lane.call(spec(ctx, owner, kind, chat, budget), lambda: AnswerConsumer(ctx.plan.encoding))
    assert isinstance(result.consumer, AnswerConsumer)
    return result, result.consumer


async def forced_answer(
    ctx: ModelContext, owner: Owner, kind: CallKind, task: Task, rendered: Rendered, partial: str, budget: int
) -> Grade:
    """Force an answer from the trace cut at ``budget`` and grade it."""
    chat = calls.answer_request(ctx.plan, task, rendered, partial)
    _result, answer = await ask(ctx, owner, kind, chat, budget)
    return task.grade(answer.text, rendered)
