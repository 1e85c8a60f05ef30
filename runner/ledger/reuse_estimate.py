"""The estimate's view of trace reuse: which planned jobs a stored trace serves, and which of their
forced answers are still to be paid (docs/reuse.md).

A job is served when the store holds a trace of its key (`runner.config.reuse_keys.trace_key`)
that reaches its last budget, as the run decides it (`runner.engine.reuse`). Such a job makes no
trace call; each distinct cut of its budgets needs a forced answer unless the stored run answered
that same cut of that same trace (the answer's call key is found). A cut's tokens are known
without tokenizing again: the stored trace's cut marks give them at the budgets it was cut at, and
at any other budget the cut holds that many tokens (or, past the end of a trace that ended, the
whole trace).

A job whose stored trace falls short of its last budget makes its trace call (`short_of`): a
continuation, or the trace requested again, priced as a whole trace. Its answers up to the stored
trace's reach are taken as served where the cuts there come out the same: a continuation starts
from the stored text, and a seeded host reproduces the stored trace (on a seedless protocol the
trace is a new draw, and every answer is priced).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.config.calls import ModelPlan, PlannedCall, answer_request, traced_channel
from runner.config.kinds import SEEDLESS_KINDS, continues_trace
from runner.config.plan import Job
from runner.config.reuse_keys import call_key, trace_key
from runner.ledger.trace_store import StoredCall, TraceStore
from runner.ledger.transcripts import CallText, CutMark
from runner.tasks.base import Rendered, Task


@dataclass(frozen=True)
class Candidate:
    """A job whose trace the store holds far enough: its key and the stored trace."""

    key: str
    stored: StoredCall


@dataclass(frozen=True)
class ServedJob:
    """A job served by a stored trace.

    Attributes:
        new_cuts: tokens of each distinct cut whose forced answer must be paid.
        answers_reused: distinct cuts whose stored answer serves.
        usd_not_spent: what the stored trace and answers cost where they were paid.
    """

    new_cuts: tuple[int, ...]
    answers_reused: int
    usd_not_spent: float


class ReuseLookup:
    """Finds the planned jobs a `TraceStore` serves (see the module docstring)."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def candidate(self, plan: ModelPlan, trace: PlannedCall, budgets: tuple[int, ...]) -> Candidate | None:
        """The stored trace that serves this planned trace call at every budget, if any (cheap)."""
        if trace.kind != "trace" or plan.fidelity == "hidden":
            return None
        key = trace_key(plan, trace.request)
        stored = self.store.trace(key)
        return Candidate(key, stored) if stored is not None and stored.serves(budgets[-1]) else None

    def short_of(self, plan: ModelPlan, trace: PlannedCall, budgets: tuple[int, ...]) -> tuple[int, ...]:
        """The budgets whose answers a job must pay for when its stored trace falls short of the
        last one (see the module docstring); all of them when nothing of it can serve."""
        if trace.kind != "trace" or plan.fidelity == "hidden":
            return budgets
        stored = self.store.trace(trace_key(plan, trace.request))
        if stored is None or stored.reach is None:
            return budgets
        traced = traced_channel(plan)
        continued = continues_trace(plan.provider_kind, traced, thinking=traced == "reasoning")
        if not continued and plan.provider_kind in SEEDLESS_KINDS:
            return budgets
        return tuple(b for b in budgets if b > stored.reach)

    def serve(self, plan: ModelPlan, job: Job, task: Task, found: Candidate) -> ServedJob:
        """The answers a served job still pays for (decodes the stored trace's record)."""
        record = self.store.record(found.stored)
        marks = {m.budget: m for m in record.cuts}
        rendered = task.render(job.problem, job.seed)
        seen: set[int] = set()
        new_cuts: list[int] = []
        reused, usd = 0, found.stored.usd
        for budget in job.budgets:
            mark = marks.get(budget)
            tokens = mark.tokens if mark is not None else _tokens_at(found.stored, record, budget)
            if tokens in seen:
                continue  # the same cut as an earlier budget's: its answer serves, no call
            seen.add(tokens)
            answer = self._stored_answer(plan, found.key, (task, rendered), record, mark)
            if answer is None:
                new_cuts.append(tokens)
            else:
                reused += 1
                usd += answer.usd
        return ServedJob(new_cuts=tuple(new_cuts), answers_reused=reused, usd_not_spent=usd)

    def _stored_answer(
        self, plan: ModelPlan, trace: str, problem: tuple[Task, Rendered], record: CallText, mark: CutMark | None
    ) -> StoredCall | None:
        """The stored forced answer of this cut, when the cut is one the stored trace was cut at."""
        if mark is None:
            return None
        traced = record.reasoning if record.traced == "reasoning" else record.content
        request = answer_request(plan, *problem, traced[: mark.chars])
        return self.store.call(call_key(plan, request, trace))


def _tokens_at(stored: StoredCall, record: CallText, budget: int) -> int:
    """A cut's tokens at a budget the stored trace was not cut at: the budget, or past the end of a
    trace that ended, the whole trace (known when one of its cuts already held it all)."""
    if stored.reach is None:
        whole = [m.tokens for m in record.cuts if m.tokens < m.budget]
        if whole and budget >= whole[0]:
            return whole[0]
    return budget


__all__ = ["Candidate", "ReuseLookup", "ServedJob"]
