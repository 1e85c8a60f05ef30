"""The export table: one typed row per (job, budget) of a run, for pandas, DuckDB and R.

Rows are built from the ledger (the completed execution of each job, its snapshots and every
attempt it paid for) and, when the run has transcripts, from them (the gold answer and the forced
answer's text). A job's untruncated trace has its own row with ``budget`` null. Columns and their
types are `EXPORT_COLUMNS`; the writers in `runner.ui.export` keep numbers as numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec

from runner.analysis.transcripts import JobTranscript, iter_transcripts
from runner.errors import NoTranscripts
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, RunHeader, Snapshot

ColumnType = Literal["str", "int", "float", "bool"]


class ExportRow(msgspec.Struct, kw_only=True):
    """One (job, budget): the cut, the forced answer and its score, and what the calls cost."""

    run: str
    job_id: str
    instance: str
    model: str
    dataset: str
    method: str
    problem_id: str
    sample: int
    fidelity: str
    budget: int | None  # None: the untruncated trace's own answer
    cut_tokens: int  # tokens in the cut (fewer than the budget when the trace ended first)
    reused: bool  # the cut equals an earlier budget's: its answer was reused, no call made
    answer: str  # the extracted answer, as graded
    score: float  # headline quality in [0, 1]
    exact: float | None  # exact match, where the headline is partial credit (trip planning)
    gold: str | None  # from the transcripts (None without them)
    answer_text: str | None  # the forced answer as streamed (transcripts; None without them)
    answer_call_id: str | None  # the ledger's call that answered this cut (None: full trace or reused)
    answer_attempts: int
    answer_usd: float
    answer_input_tokens: int
    answer_output_tokens: int
    trace_call_id: str | None  # None for hidden reasoning (one call per budget)
    trace_finish: str
    trace_tokens: int
    trace_usd: float
    job_usd: float  # every attempt of the execution: trace, answers, retries
    job_attempts: int


def _column_type(annotation: str) -> ColumnType:
    base = annotation.replace(" | None", "")
    return "int" if base == "int" else "float" if base == "float" else "bool" if base == "bool" else "str"


# (name, type, nullable) of every column, in order
EXPORT_COLUMNS: tuple[tuple[str, ColumnType, bool], ...] = tuple(
    (name, _column_type(str(ExportRow.__annotations__[name])), "None" in str(ExportRow.__annotations__[name]))
    for name in ExportRow.__struct_fields__
)


class _Ledger:
    """What the rows need from the ledger, read in one pass."""

    def __init__(self, run_dir: Path) -> None:
        self.run = run_dir.name
        self.done: dict[str, JobDone] = {}
        self.snapshots: dict[str, list[Snapshot]] = defaultdict(list)
        self.attempts: dict[str, list[Attempt]] = defaultdict(list)
        for record in iter_records(run_dir):
            if isinstance(record, Attempt):
                self.attempts[record.job_id].append(record)
            elif isinstance(record, Snapshot):
                self.snapshots[record.job_id].append(record)
            elif isinstance(record, JobDone):
                self.done[record.job_id] = record
            elif isinstance(record, RunHeader) and self.run == run_dir.name:
                name = record.manifest.get("run", {})
                self.run = str(name.get("name", run_dir.name)) if isinstance(name, dict) else run_dir.name


def export_rows(run_dir: Path) -> Iterator[ExportRow]:
    """Every (job, budget) row of the run's completed jobs, in ledger order.

    Raises:
        LedgerError: no ledger, or a line is not a record.
        TranscriptsCorrupt: the run's transcripts are damaged.
    """
    run_dir = Path(run_dir)
    ledger = _Ledger(run_dir)
    texts = _texts(run_dir)
    for job_id, done in ledger.done.items():
        attempts = [a for a in ledger.attempts[job_id] if a.instance in (done.instance, None)]
        snapshots = [s for s in ledger.snapshots[job_id] if s.instance == done.instance]
        found = texts.get(job_id)
        yield from _job_rows(
            ledger.run, done, snapshots, attempts, found if found and found.instance == done.instance else None
        )


class _Texts(msgspec.Struct):
    """The little of a transcript a row shows (the whole of every trace would not fit in memory)."""

    instance: str
    gold: str
    answers: dict[int, str]  # budget -> the forced answer as streamed
    own_answer: str | None  # a reasoning model's own final answer (the full trace's row)


def _texts(run_dir: Path) -> dict[str, _Texts]:
    try:
        return {t.job_id: _texts_of(t) for t in iter_transcripts(run_dir)}
    except NoTranscripts:
        return {}


def _texts_of(t: JobTranscript) -> _Texts:
    own = t.content if t.traced == "reasoning" else None
    return _Texts(t.instance, t.gold, {a.budget: a.text for a in t.answers if a.call_id is not None}, own)


def _job_rows(
    run: str, done: JobDone, snapshots: list[Snapshot], attempts: list[Attempt], texts: _Texts | None
) -> Iterator[ExportRow]:
    by_call: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_call[attempt.call_id].append(attempt)
    trace = next((tries for tries in by_call.values() if tries[0].kind == "trace"), [])
    answer_calls = {
        tries[0].budget: (call_id, tries) for call_id, tries in by_call.items() if tries[0].kind == "answer"
    }
    for snap in sorted(snapshots, key=lambda s: (s.budget is None, s.budget or 0)):
        call_id, tries = answer_calls.get(snap.budget, (None, [])) if not snap.reused else (None, [])
        text = (texts.answers.get(snap.budget) if snap.budget is not None else texts.own_answer) if texts else None
        yield ExportRow(
            run=run,
            job_id=done.job_id,
            instance=done.instance,
            model=done.model,
            dataset=done.dataset,
            method=done.method,
            problem_id=done.problem_id,
            sample=done.sample,
            fidelity=done.fidelity,
            budget=snap.budget,
            cut_tokens=snap.tokens,
            reused=snap.reused,
            answer=snap.answer,
            score=snap.score,
            exact=snap.exact,
            gold=texts.gold if texts else None,
            answer_text=text,
            answer_call_id=call_id,
            answer_attempts=len(tries),
            answer_usd=sum(a.usd for a in tries),
            answer_input_tokens=sum(a.billed_input for a in tries),
            answer_output_tokens=sum(a.billed_output for a in tries),
            trace_call_id=trace[0].call_id if trace else None,
            trace_finish=done.trace_finish,
            trace_tokens=done.trace_tokens,
            trace_usd=sum(a.usd for a in trace),
            job_usd=sum(a.usd for a in attempts),
            job_attempts=len(attempts),
        )


__all__ = ["EXPORT_COLUMNS", "ColumnType", "ExportRow", "export_rows"]
