"""Transcripts from the engine's side: what each call sent and streamed, as transcript records.

The pipeline and `calling` hand a `Transcriber` what they already hold (the job, the call's
result and consumer, the grade) and it writes `runner.ledger.transcripts` records to a sink (the
run's `TranscriptWriter`). `NO_TRANSCRIPTS` does nothing, for runs with ``--no-transcripts``.

A forced answer's prompt is stored without the trace's cut it repeats, and a PDP / LEAP prompt
without its preface (`store_message`; the preface goes once into a ``shared`` record): without
this the file would hold every trace about three times and every preface once per job. The
transcriber remembers the preface of each execution until `settle`, which also waits until the
execution's records are on disk.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Protocol

from runner.config.plan import Job
from runner.engine.attempt import CallSpec
from runner.engine.consumers import AnswerConsumer, TraceConsumer
from runner.engine.lane import CallResult
from runner.engine.reuse import Reused
from runner.ledger.transcripts import (
    SHARED_MIN_CHARS,
    CallText,
    CutMark,
    GradeText,
    JobText,
    SharedText,
    Splice,
    TranscriptRecord,
    store_message,
)
from runner.tasks.base import Grade
from runner.types import Message

# executions remembered at most (a synthesis sample is never settled: the oldest are dropped)
_REMEMBERED = 1024


class TranscriptSink(Protocol):
    """Where records go: the run's `TranscriptWriter`, or anything that keeps them the same way."""

    def append(self, record: TranscriptRecord) -> None: ...

    async def flush(self) -> None: ...


class Execution(Protocol):
    """Whose call it is (`runner.engine.calling.Owner` is one)."""

    @property
    def job_id(self) -> str: ...

    @property
    def instance(self) -> str: ...


class Transcriber:
    """Writes one execution's calls and grades as transcript records."""

    def __init__(self, sink: TranscriptSink) -> None:
        self.sink = sink
        # executions whose calls send a long preface: (shared id, text)
        self._prefaces: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._shared: set[str] = set()

    def job(self, owner: Execution, job: Job, fidelity: str, gold: str, preface: str | None) -> None:
        """A job's execution starts; its calls may send ``preface`` (PDP / LEAP)."""
        if preface is not None and len(preface) >= SHARED_MIN_CHARS:
            self._prefaces[(owner.job_id, owner.instance)] = (self._share(preface), preface)
            if len(self._prefaces) > _REMEMBERED:  # a failed job never settles: drop the oldest
                self._prefaces.popitem(last=False)
        self.sink.append(
            JobText(
                job_id=job.job_id,
                instance=owner.instance,
                model=job.model,
                dataset=job.dataset,
                method=job.method,
                problem_id=job.problem.id,
                sample=job.sample,
                budgets=list(job.budgets),
                fidelity=fidelity,
                gold=_clean(gold),
            )
        )

    def trace(
        self, owner: Execution, spec: CallSpec, result: CallResult, consumer: TraceConsumer, reused: Reused = Reused()
    ) -> None:
        """A trace returned: its text, both channels, and where each budget's cut falls; ``reused``:
        the key a later run finds it by, and the stored trace it was served or continued from."""
        traced_text = consumer.tokenizer.text
        own = _clean(consumer.answer_text)
        other = _clean("".join(consumer.other_reasoning))
        reasoning, content = (traced_text, own) if consumer.traced == "reasoning" else (other, traced_text)
        record = self._call(owner, spec, result, reasoning, content, "", reused)
        record.traced = "reasoning" if consumer.traced == "reasoning" else "content"
        marks = (CutMark(budget=c.budget, tokens=c.tokens, chars=len(c.text)) for c in consumer.cuts.values())
        record.cuts = sorted(marks, key=lambda m: m.budget)
        self.sink.append(record)

    def answer(
        self,
        owner: Execution,
        spec: CallSpec,
        result: CallResult,
        consumer: AnswerConsumer,
        cut: str = "",
        reused: Reused = Reused(),
    ) -> None:
        """A call whose whole output is the answer returned (forced answers, hidden budgets, principles).

        ``cut`` is the trace's cut its prompt holds (a prefix of the same execution's traced text):
        it is stored as a splice, not again. ``reused``: as for `trace`.
        """
        reasoning, content = _clean("".join(consumer.reasoning)), _clean("".join(consumer.content))
        self.sink.append(self._call(owner, spec, result, reasoning, content, cut, reused))

    def grade(self, owner: Execution, call_id: str, budget: int | None, grade: Grade, gold: str) -> None:
        """The task's verdict on an answer call."""
        self.sink.append(
            GradeText(
                job_id=owner.job_id,
                instance=owner.instance,
                call_id=call_id,
                budget=budget,
                answer=_clean(grade.answer),
                gold=gold,
                score=grade.score,
                exact=grade.exact,
            )
        )

    async def settle(self, owner: Execution) -> None:
        """The execution is over: forget it, and return once its records are on disk."""
        self._prefaces.pop((owner.job_id, owner.instance), None)
        await self.sink.flush()

    def _call(
        self,
        owner: Execution,
        spec: CallSpec,
        result: CallResult,
        reasoning: str,
        content: str,
        cut: str,
        reused: Reused,
    ) -> CallText:
        stretches: list[tuple[str, Splice]] = []
        preface = self._prefaces.get((owner.job_id, owner.instance))
        if preface is not None:
            stretches.append((preface[1], Splice(at=0, shared=preface[0])))
        if cut:
            stretches.append((cut, Splice(at=0, cut=len(cut))))
        return CallText(
            job_id=owner.job_id,
            instance=owner.instance,
            call_id=result.call_id,
            attempts=result.attempts,
            kind=spec.kind,
            model=spec.model,
            budget=spec.budget,
            messages=[store_message(_cleaned(m), stretches) for m in spec.request.messages],
            reasoning=reasoning,
            content=content,
            finish=result.finish,
            key=reused.key,
            reused_from=reused.source,
        )

    def _share(self, text: str) -> str:
        shared_id = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if shared_id not in self._shared:  # once per process: a resumed run writes it again
            self._shared.add(shared_id)
            self.sink.append(SharedText(id=shared_id, text=_clean(text)))
        return shared_id


class _NoSink:
    def append(self, record: TranscriptRecord) -> None:
        pass

    async def flush(self) -> None:
        pass


class _NoTranscripts(Transcriber):
    """Transcripts off: every method returns at once and nothing is kept."""

    def __init__(self) -> None:
        super().__init__(_NoSink())

    def job(self, owner: Execution, job: Job, fidelity: str, gold: str, preface: str | None) -> None:
        pass

    def trace(
        self, owner: Execution, spec: CallSpec, result: CallResult, consumer: TraceConsumer, reused: Reused = Reused()
    ) -> None:
        pass

    def answer(
        self,
        owner: Execution,
        spec: CallSpec,
        result: CallResult,
        consumer: AnswerConsumer,
        cut: str = "",
        reused: Reused = Reused(),
    ) -> None:
        pass

    def grade(self, owner: Execution, call_id: str, budget: int | None, grade: Grade, gold: str) -> None:
        pass

    async def settle(self, owner: Execution) -> None:
        pass


NO_TRANSCRIPTS: Transcriber = _NoTranscripts()


def _clean(text: str) -> str:
    """``text`` as UTF-8 can hold it: a JSON stream can decode to lone surrogates, which become
    U+FFFD (as the tokenizer mends the traced text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _cleaned(message: Message) -> Message:
    content = _clean(message.content)
    return message if content is message.content else Message(message.role, content)


__all__ = ["NO_TRANSCRIPTS", "Execution", "Transcriber", "TranscriptSink"]
