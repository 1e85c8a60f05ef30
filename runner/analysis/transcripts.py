"""Reading transcripts: one job's calls as a page shows them, joined with the ledger's accounting.

The API (the viewer, the export and tests use only this):

- ``read_job_transcript(run_dir, job_id) -> JobTranscript | None``: the job's execution that the
  ledger says completed (else the last one started), or None when the file holds nothing of the
  job (an unknown id, or a job run with transcripts off). The first call on a run indexes its
  file; later calls read only the members holding the job, and a growing file (a run still in
  progress) is indexed from where the last call stopped.
- ``iter_transcripts(run_dir) -> Iterator[JobTranscript]``: every job, one pass over the file,
  in the order their records end in it; memory holds only the jobs still open at that point.
- ``transcript_file_info(run_dir) -> TranscriptFileInfo``: members, sizes, and a torn tail.
- Errors (`runner.errors`): `TranscriptError`, the base to catch; `NoTranscripts` (also a
  `ConfigError`) for a run folder without a transcripts file; `TranscriptsCorrupt` (also a
  `LedgerError`) for a damaged member before the end. A torn tail (a crash, or a member being
  written) is not an error: it is skipped and shown in `TranscriptFileInfo.torn_bytes`.
- `LedgerError` when the run folder has no ledger.

A `JobTranscript` (frozen msgspec Structs all the way down):

- identity: ``job_id``, ``instance`` (the execution), ``model``, ``dataset``, ``method``,
  ``problem_id``, ``sample``, ``fidelity``, ``budgets``, ``gold``, ``complete`` (the ledger
  holds its completion);
- the trace: ``messages`` (as sent), ``reasoning`` and ``content`` (as streamed, kept apart),
  ``traced`` (which of the two the cuts are in; None for hidden reasoning), ``finish``;
- ``cuts``: per budget a `CutView`: ``tokens`` in the cut, and ``reasoning_chars`` /
  ``content_chars``: the character offset where the cut falls in that text (None in the other);
- ``answers``: per budget a `BudgetView`: the forced answer's ``messages``, ``reasoning`` and
  ``text`` as streamed, the extracted ``answer``, ``gold``, ``score`` and ``exact``, ``reused``
  (the cut equals an earlier budget's, whose answer it shares) and its ``call_id``;
- ``full_answer`` / ``full_score``: the untruncated trace's own answer, from the ledger;
- ``calls``: every call of the execution from the ledger, as `CallView`s with their
  `AttemptView`s (ids, kind, budget, status, tokens, dollars, errors, latency), and ``usd``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock

import msgspec

from runner.errors import LedgerError, NoTranscripts
from runner.ledger.reader import iter_records as iter_ledger
from runner.ledger.reader import ledger_path
from runner.ledger.records import Attempt, JobDone, Record, Snapshot, decode_line
from runner.ledger.transcripts import (
    CallText,
    GradeText,
    JobText,
    Member,
    SharedText,
    Splice,
    TranscriptRecord,
    decode_member,
    read_member,
    restore,
    transcripts_path,
    walk,
)
from runner.types import CallKind, Message

# ---- the API's types ------------------------------------------------------------------------------


class CutView(msgspec.Struct, frozen=True, kw_only=True):
    """Where budget ``budget`` cuts the trace: ``tokens`` in the cut, and its character offset
    into the text it cuts (``reasoning_chars`` or ``content_chars``; both None for hidden reasoning)."""

    budget: int
    tokens: int
    reasoning_chars: int | None = None
    content_chars: int | None = None


class BudgetView(msgspec.Struct, frozen=True, kw_only=True):
    """The forced answer at one budget, as sent and streamed, and its grade."""

    budget: int
    tokens: int  # tokens in the cut it answers
    reused: bool  # the cut equals an earlier budget's: that answer (and call) is shared
    call_id: str | None
    messages: tuple[Message, ...]
    reasoning: str
    text: str
    answer: str | None  # extracted; None when the grade is not in the transcripts
    gold: str
    score: float | None
    exact: float | None = None


class AttemptView(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP attempt as the ledger recorded it (tokens billed: reported, else counted)."""

    attempt: int
    status: str
    http_status: int | None
    error_class: str | None
    error: str | None
    input_tokens: int
    cached_input_tokens: int | None
    output_tokens: int
    reasoning_tokens: int | None
    usd: float
    priced_from: str
    started_at: float
    latency_s: float
    ttft_s: float | None
    request_id: str | None


class CallView(msgspec.Struct, frozen=True, kw_only=True):
    """A call of the execution: its attempts (retries included), what it cost, how it ended."""

    call_id: str
    kind: CallKind
    budget: int | None
    status: str  # the last attempt's
    error: str | None  # the last attempt's error, when the call failed
    attempts: tuple[AttemptView, ...]
    usd: float
    input_tokens: int
    output_tokens: int
    transcribed: bool  # its text is in the transcripts (a failed call's is not)


class JobTranscript(msgspec.Struct, frozen=True, kw_only=True):
    """One job's execution, whole: see the module docstring for every field."""

    job_id: str
    instance: str
    model: str
    dataset: str
    method: str
    problem_id: str
    sample: int
    fidelity: str
    budgets: tuple[int, ...]
    gold: str
    complete: bool
    messages: tuple[Message, ...]
    reasoning: str
    content: str
    traced: str | None
    finish: str | None
    cuts: tuple[CutView, ...]
    answers: tuple[BudgetView, ...]
    full_answer: str | None
    full_score: float | None
    calls: tuple[CallView, ...]
    usd: float


class TranscriptFileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The transcripts file of a run: where it is, its members, and a torn tail if any."""

    path: str
    members: int
    bytes: int
    raw_bytes: int  # uncompressed
    torn_bytes: int  # a member cut short at the end (a crash; the next run on the folder cuts it off)


# ---- the API ----------------------------------------------------------------------------------------


def transcript_file_info(run_dir: Path) -> TranscriptFileInfo:
    """The run's transcripts file at a glance (no member is decompressed).

    Raises:
        NoTranscripts: the run folder has no transcripts file.
        TranscriptsCorrupt: a damaged member before the end.
    """
    path = _existing(run_dir)
    walked = walk(path)
    return TranscriptFileInfo(
        path=str(path),
        members=len(walked.members),
        bytes=walked.end + walked.torn_bytes,
        raw_bytes=sum(m.raw_length for m in walked.members),
        torn_bytes=walked.torn_bytes,
    )


def read_job_transcript(run_dir: Path, job_id: str) -> JobTranscript | None:
    """The job's completed execution (else its last one started), or None if the file has nothing of it.

    Raises:
        NoTranscripts: the run folder has no transcripts file.
        TranscriptsCorrupt: a damaged member.
        LedgerError: the run folder has no ledger, or a ledger line is not a record.
    """
    path = _existing(run_dir)
    index = _index_of(path)
    ledger = _LedgerJobs.read(Path(run_dir), only=job_id)
    instance = ledger.chosen_instance(job_id, index.instances.get(job_id, []))
    if instance is None:
        return None
    wanted = sorted(index.members_of.get((job_id, instance), ()))
    records = [r for r in _records_at(path, index, wanted) if _owner(r) == (job_id, instance)]
    shared = _shared_texts(path, index, records)
    return _assemble(records, shared, ledger)


def iter_transcripts(run_dir: Path) -> Iterator[JobTranscript]:
    """Every job with a transcript, in the order its records end in the file (one pass).

    Raises:
        NoTranscripts, TranscriptsCorrupt, LedgerError: as `read_job_transcript`.
    """
    path = _existing(run_dir)
    index = _index_of(path)
    ledger = _LedgerJobs.read(Path(run_dir))
    chosen = {job_id: ledger.chosen_instance(job_id, instances) for job_id, instances in index.instances.items()}
    last_member = {
        owner: max(members) for owner, members in index.members_of.items() if chosen.get(owner[0]) == owner[1]
    }
    open_jobs: dict[tuple[str, str], list[TranscriptRecord]] = defaultdict(list)
    shared: dict[str, str] = {}
    ends_at: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for owner, position in last_member.items():
        ends_at[position].append(owner)
    with open(path, "rb") as handle:
        for position, member in enumerate(index.members):
            for record in decode_member(read_member(handle, member, path), path, member):
                if isinstance(record, SharedText):
                    shared[record.id] = record.text
                elif (key := _owner(record)) is not None and key in last_member:
                    open_jobs[key].append(record)
            for owner in ends_at.get(position, ()):
                transcript = _assemble(open_jobs.pop(owner, []), shared, ledger)
                if transcript is not None:
                    yield transcript


# ---- the file's index ---------------------------------------------------------------------------------


class _Ref(msgspec.Struct, tag_field="type", gc=False):
    pass


class _RefOwned(_Ref):
    job_id: str
    instance: str


class _RefJob(_RefOwned, tag="job"):
    pass


class _RefCall(_RefOwned, tag="call"):
    pass


class _RefGrade(_RefOwned, tag="grade"):
    pass


class _RefShared(_Ref, tag="shared"):
    id: str


class _RefHeader(_Ref, tag="header"):
    pass


_ref_decoder = msgspec.json.Decoder(_RefJob | _RefCall | _RefGrade | _RefShared | _RefHeader)


@dataclass
class _Index:
    """Which members hold which execution's records; built once per file, extended as it grows."""

    size: int = 0
    mtime_ns: int = 0
    end: int = 0  # the end of the last member indexed
    members: list[Member] = field(default_factory=list)
    members_of: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    instances: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # in start order
    shared_at: dict[str, int] = field(default_factory=dict)

    def extend(self, path: Path) -> None:
        walked = walk(path, self.end)
        with open(path, "rb") as handle:
            for member in walked.members:
                position = len(self.members)
                self.members.append(member)
                refs = _ref_decoder.decode_lines(read_member(handle, member, path))
                for ref in refs:
                    if isinstance(ref, _RefOwned):
                        self.members_of[(ref.job_id, ref.instance)].add(position)
                        if isinstance(ref, _RefJob):
                            self.instances[ref.job_id].append(ref.instance)
                    elif isinstance(ref, _RefShared):
                        self.shared_at.setdefault(ref.id, position)
        self.end = walked.end


_indexes: dict[Path, _Index] = {}
_indexes_lock = Lock()  # the viewer may read from several threads


def _index_of(path: Path) -> _Index:
    stat = os.stat(path)
    with _indexes_lock:
        index = _indexes.get(path)
        if index is None or stat.st_size < index.size:  # new, or replaced by a smaller file
            index = _indexes[path] = _Index()
        if (stat.st_size, stat.st_mtime_ns) != (index.size, index.mtime_ns):
            index.extend(path)
            index.size, index.mtime_ns = stat.st_size, stat.st_mtime_ns
        return index


def _existing(run_dir: Path) -> Path:
    path = transcripts_path(Path(run_dir))
    if not path.is_file():
        raise NoTranscripts(
            f"{run_dir}: no {path.name} here: the run was made with --no-transcripts (or run.transcripts = false) "
            "or before transcripts existed; rerun it with transcripts on to have them for new jobs"
        )
    return path


def _records_at(path: Path, index: _Index, positions: Iterable[int]) -> list[TranscriptRecord]:
    records: list[TranscriptRecord] = []
    with open(path, "rb") as handle:
        for position in positions:
            member = index.members[position]
            records += decode_member(read_member(handle, member, path), path, member)
    return records


def _shared_texts(path: Path, index: _Index, records: list[TranscriptRecord]) -> dict[str, str]:
    wanted = {
        splice.shared
        for r in records
        if isinstance(r, CallText)
        for m in r.messages
        for splice in m.splices
        if splice.shared is not None
    }
    positions = sorted({index.shared_at[s] for s in wanted if s in index.shared_at})
    return {r.id: r.text for r in _records_at(path, index, positions) if isinstance(r, SharedText) and r.id in wanted}


def _owner(record: TranscriptRecord) -> tuple[str, str] | None:
    if isinstance(record, JobText | CallText | GradeText):
        return record.job_id, record.instance
    return None


# ---- the ledger's side ----------------------------------------------------------------------------------


@dataclass
class _LedgerJobs:
    """Completions, snapshots and attempts of the jobs, from the ledger."""

    done: dict[str, JobDone] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], list[Snapshot]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[str, list[Attempt]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def read(cls, run_dir: Path, only: str | None = None) -> _LedgerJobs:
        jobs = cls()
        for record in iter_ledger(run_dir) if only is None else _lines_of_job(run_dir, only):
            if isinstance(record, Attempt):
                jobs.attempts[record.job_id].append(record)
            elif isinstance(record, Snapshot):
                jobs.snapshots[(record.job_id, record.instance)].append(record)
            elif isinstance(record, JobDone):
                jobs.done[record.job_id] = record
        return jobs

    def chosen_instance(self, job_id: str, started: list[str]) -> str | None:
        """The execution the ledger completed if the transcripts hold it, else the last one started."""
        done = self.done.get(job_id)
        if done is not None and done.instance in started:
            return done.instance
        return started[-1] if started else None


def _lines_of_job(run_dir: Path, job_id: str) -> Iterator[Record]:
    """The whole ledger lines that name ``job_id``, decoded: a page of one job must not decode a
    paper-scale ledger (tens of MB) line by line, so the bytes are searched first."""
    path = ledger_path(Path(run_dir))
    if not path.is_file():
        raise LedgerError(f"{path}: no ledger here")
    data = path.read_bytes()
    needle = b'"job_id":' + msgspec.json.encode(job_id)
    position = data.find(needle)
    while position >= 0:
        start, end = data.rfind(b"\n", 0, position) + 1, data.find(b"\n", position)
        if end < 0:
            return  # a torn last line
        try:
            yield decode_line(data[start : end + 1])
        except msgspec.DecodeError as exc:
            line = data.count(b"\n", 0, start) + 1
            raise LedgerError(f"{path}:{line}: not a ledger record: {exc}") from None
        position = data.find(needle, end)


# ---- one job, assembled ------------------------------------------------------------------------------------


def _assemble(records: list[TranscriptRecord], shared: dict[str, str], ledger: _LedgerJobs) -> JobTranscript | None:
    job = next((r for r in records if isinstance(r, JobText)), None)
    if job is None:
        return None
    calls = [r for r in records if isinstance(r, CallText)]
    grades = {r.call_id: r for r in records if isinstance(r, GradeText)}
    trace = next((c for c in calls if c.kind == "trace"), None)
    answers = {c.budget: c for c in calls if c.kind == "answer" and c.budget is not None}

    def resolve(splice: Splice) -> str | None:
        if splice.shared is not None:
            return shared.get(splice.shared)
        if trace is None or splice.cut is None:
            return None
        return (trace.reasoning if trace.traced == "reasoning" else trace.content)[: splice.cut]

    first = trace or next(iter(answers.values()), None)
    snapshots = ledger.snapshots.get((job.job_id, job.instance), [])
    full = next((s for s in snapshots if s.budget is None), None)
    cuts = _cuts(job, trace, snapshots)
    ledger_calls = _calls(ledger.attempts.get(job.job_id, []), job.instance, {c.call_id for c in calls})
    done = ledger.done.get(job.job_id)
    return JobTranscript(
        job_id=job.job_id,
        instance=job.instance,
        model=job.model,
        dataset=job.dataset,
        method=job.method,
        problem_id=job.problem_id,
        sample=job.sample,
        fidelity=job.fidelity,
        budgets=tuple(job.budgets),
        gold=job.gold,
        complete=done is not None and done.instance == job.instance,
        messages=tuple(restore(m, resolve) for m in first.messages) if first else (),
        reasoning=trace.reasoning if trace else "",
        content=trace.content if trace else "",
        traced=trace.traced if trace else None,
        finish=trace.finish if trace else None,
        cuts=cuts,
        answers=_answers(job, cuts, answers, grades, resolve),
        full_answer=full.answer if full else None,
        full_score=full.score if full else None,
        calls=ledger_calls,
        usd=sum(c.usd for c in ledger_calls),
    )


def _cuts(job: JobText, trace: CallText | None, snapshots: list[Snapshot]) -> tuple[CutView, ...]:
    if trace is None:  # hidden reasoning: no trace, the tokens each budget's call used
        tokens = {s.budget: s.tokens for s in snapshots if s.budget is not None}
        return tuple(CutView(budget=b, tokens=tokens.get(b, 0)) for b in job.budgets)
    in_reasoning = trace.traced == "reasoning"
    return tuple(
        CutView(
            budget=m.budget,
            tokens=m.tokens,
            reasoning_chars=m.chars if in_reasoning else None,
            content_chars=None if in_reasoning else m.chars,
        )
        for m in trace.cuts
    )


def _answers(
    job: JobText,
    cuts: tuple[CutView, ...],
    calls: dict[int, CallText],
    grades: dict[str, GradeText],
    resolve: Callable[[Splice], str | None],
) -> tuple[BudgetView, ...]:
    """Per budget, its answer call; a budget whose cut equals an earlier one's shares that answer."""
    views: list[BudgetView] = []
    first_with_cut: dict[tuple[int, int | None, int | None], int] = {}
    for cut in cuts:
        same = (cut.tokens, cut.reasoning_chars, cut.content_chars)
        source = cut.budget if cut.budget in calls else first_with_cut.get(same, cut.budget)
        first_with_cut.setdefault(same, cut.budget)
        call = calls.get(source)
        grade = grades.get(call.call_id) if call else None
        views.append(
            BudgetView(
                budget=cut.budget,
                tokens=cut.tokens,
                reused=source != cut.budget,
                call_id=call.call_id if call else None,
                messages=tuple(restore(m, resolve) for m in call.messages) if call else (),
                reasoning=call.reasoning if call else "",
                text=call.content if call else "",
                answer=grade.answer if grade else None,
                gold=grade.gold if grade else job.gold,
                score=grade.score if grade else None,
                exact=grade.exact if grade else None,
            )
        )
    return tuple(views)


def _calls(attempts: list[Attempt], instance: str, transcribed: set[str]) -> tuple[CallView, ...]:
    by_call: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        if attempt.instance in (instance, None):  # None: a ledger written before attempts named it
            by_call[attempt.call_id].append(attempt)
    views = []
    for call_id, tries in by_call.items():
        tries.sort(key=lambda a: a.attempt)
        last = tries[-1]
        views.append(
            CallView(
                call_id=call_id,
                kind=last.kind,
                budget=last.budget,
                status=last.status,
                error=last.error if last.status in ("error", "interrupted") else None,
                attempts=tuple(_attempt_view(a) for a in tries),
                usd=sum(a.usd for a in tries),
                input_tokens=sum(a.billed_input for a in tries),
                output_tokens=sum(a.billed_output for a in tries),
                transcribed=call_id in transcribed,
            )
        )
    views.sort(key=lambda c: (c.attempts[0].started_at, c.kind != "trace", c.budget or 0))
    return tuple(views)


def _attempt_view(a: Attempt) -> AttemptView:
    return AttemptView(
        attempt=a.attempt,
        status=a.status,
        http_status=a.http_status,
        error_class=a.error_class,
        error=a.error,
        input_tokens=a.billed_input,
        cached_input_tokens=a.cached_input_tokens,
        output_tokens=a.billed_output,
        reasoning_tokens=a.reasoning_tokens if a.reasoning_tokens is not None else a.reasoning_tokens_counted,
        usd=a.usd,
        priced_from=a.priced_from,
        started_at=a.started_at,
        latency_s=a.latency_s,
        ttft_s=a.ttft_s,
        request_id=a.request_id,
    )


__all__ = [
    "AttemptView",
    "BudgetView",
    "CallView",
    "CutView",
    "JobTranscript",
    "TranscriptFileInfo",
    "iter_transcripts",
    "read_job_transcript",
    "transcript_file_info",
]
