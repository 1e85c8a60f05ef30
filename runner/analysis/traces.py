"""Every trace of a run as one row: its grade at each budget, tokens, dollars, calls, retries, errors.

A row is one job (one trace of one problem by one model with one method and sample). Its grades
are the snapshots of the execution its `JobDone` names, by the report's own rule; a job with paid
attempts and no `JobDone` is a row too (``unfinished``, or ``failed`` when a ``job_failed`` note
names it), so failed calls are never hidden.

Dollars at a budget: what answering this trace at budget b alone costs (its prompt, its output up
to b, one forced answer at b), by `runner.analysis.costs`, the rule the report's quality-against-
dollars curves use; the full trace's is everything the job paid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from runner.analysis.costs import usd_at_budgets
from runner.analysis.report import _Run
from runner.ledger.records import Attempt, JobDone, Note, Snapshot

TraceState = Literal["done", "unfinished", "failed"]
FAILED_STATUSES = frozenset({"error", "truncated", "interrupted"})


class Cut(msgspec.Struct, frozen=True, kw_only=True):
    """The graded answer at one budget of a trace (``budget`` None: the full trace)."""

    budget: int | None
    tokens: int
    answer: str
    score: float
    exact: float | None = None
    reused: bool = False
    usd_at_budget: float = 0.0  # answering at this budget alone (see the module docstring)


class TraceRow(msgspec.Struct, kw_only=True):
    job_id: str
    model: str
    dataset: str
    method: str
    problem_id: str
    sample: int
    state: TraceState
    cuts: list[Cut]  # in budget order, the full trace (if recorded) last
    fidelity: str | None = None
    trace_tokens: int | None = None
    trace_finish: str | None = None
    input_tokens: int = 0  # billed (reported, else counted), every attempt
    output_tokens: int = 0
    usd: float = 0.0
    calls: int = 0
    attempts: int = 0
    retries: int = 0  # attempts after the first of their call
    failed_attempts: int = 0  # error, truncated or interrupted
    errors: list[str] = msgspec.field(default_factory=list)  # distinct error classes

    def cut_at(self, budget: int | None) -> Cut | None:
        """The cut at ``budget``, None when the trace has none there."""
        return next((c for c in self.cuts if c.budget == budget), None)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def trace_rows(
    run: _Run, notes: Iterable[Note] = (), prices: Mapping[str, Mapping[str, object]] | None = None
) -> list[TraceRow]:
    """One row per job of the run that has a completion, a snapshot or a paid attempt.

    ``notes`` name the jobs that failed; ``prices`` are the run header's (model key -> USD per 1M
    tokens), which split an attempt's dollars into prompt and output. An unfinished job's snapshots
    give its identity only: grades count from the execution a `JobDone` names.
    """
    attempts: defaultdict[str, list[Attempt]] = defaultdict(list)
    for attempt in run.attempts:
        if attempt.kind != "synthesis":
            attempts[attempt.job_id].append(attempt)
    counted: defaultdict[str, list[Snapshot]] = defaultdict(list)
    latest: dict[str, Snapshot] = {}  # identity of jobs without a completion
    for snap in run.snapshots:
        latest[snap.job_id] = snap
        done = run.done.get(snap.job_id)
        if done is not None and done.instance == snap.instance:
            counted[snap.job_id].append(snap)
    failed = _failed_jobs(notes)
    rows: list[TraceRow] = []
    for job_id in dict.fromkeys([*run.done, *latest, *attempts]):
        job_attempts = attempts.get(job_id, [])
        done = run.done.get(job_id)
        rows.append(_row(job_id, done, latest.get(job_id), counted.get(job_id, []), job_attempts, prices or {}, failed))
    return rows


def _failed_jobs(notes: Iterable[Note]) -> set[str]:
    # the sweep writes "job <id>: <error>" for a job whose provider error was final
    return {n.message.split(":", 1)[0].removeprefix("job ") for n in notes if n.kind == "job_failed"}


def _model_of(attempts: Sequence[Attempt], snap: Snapshot | None) -> str:
    if snap is not None:
        return snap.model
    return attempts[0].model if attempts else "?"


def _row(
    job_id: str,
    done: JobDone | None,
    identity: Snapshot | None,
    snaps: list[Snapshot],
    attempts: list[Attempt],
    prices: Mapping[str, Mapping[str, object]],
    failed: set[str],
) -> TraceRow:
    who: JobDone | Snapshot | None = done or identity
    state: TraceState = "done" if done else ("failed" if job_id in failed else "unfinished")
    row = TraceRow(
        job_id=job_id,
        model=who.model if who else _model_of(attempts, None),
        dataset=who.dataset if who else "?",
        method=who.method if who else "?",
        problem_id=who.problem_id if who else "?",
        sample=who.sample if who else 0,
        state=state,
        cuts=_cuts(snaps, attempts, prices),
        fidelity=done.fidelity if done else None,
        trace_tokens=done.trace_tokens if done else None,
        trace_finish=done.trace_finish if done else None,
    )
    _add_spend(row, attempts)
    return row


def _add_spend(row: TraceRow, attempts: list[Attempt]) -> None:
    row.input_tokens = sum(a.billed_input for a in attempts)
    row.output_tokens = sum(a.billed_output for a in attempts)
    row.usd = sum(a.usd for a in attempts)
    row.calls = len({a.call_id for a in attempts})
    row.attempts = len(attempts)
    row.retries = sum(1 for a in attempts if a.attempt > 1)
    row.failed_attempts = sum(1 for a in attempts if a.status in FAILED_STATUSES)
    row.errors = sorted({a.error_class or a.status for a in attempts if a.status in FAILED_STATUSES})


def _cuts(snaps: list[Snapshot], attempts: list[Attempt], price: Mapping[str, Mapping[str, object]]) -> list[Cut]:
    ordered = sorted(snaps, key=lambda s: (s.budget is None, s.budget or 0))
    budgets = [s.budget for s in ordered if s.budget is not None]
    at_budget = dict(zip(budgets, usd_at_budgets(attempts, budgets, price), strict=True)) if budgets else {}
    total = sum(a.usd for a in attempts)
    return [
        Cut(
            budget=s.budget,
            tokens=s.tokens,
            answer=s.answer,
            score=s.score,
            exact=s.exact,
            reused=s.reused,
            usd_at_budget=total if s.budget is None else at_budget[s.budget],
        )
        for s in ordered
    ]
