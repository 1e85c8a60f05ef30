"""A run's provider batches as its ledger tells them: what a resume in batch mode starts from.

Every batch the run ever meant to submit has an ``intent`` record (written before anything was
sent), then maybe its ``uploaded`` file, its ``submitted`` id, its ``ended`` or its ``lost``
record; every request of it that came back has an ``attempt`` naming the batch. From these a
resume knows, per submission, whether the provider may hold it (unfinished: poll it, or look it
up when its id was never recorded), and per call, which of its attempts already came back.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from runner.ledger.reader import iter_records, ledger_path
from runner.ledger.records import Attempt, BatchEvent, BatchLine


@dataclass
class Submission:
    """One batch the run meant to submit, as far as the ledger knows it."""

    intent: BatchEvent
    file_id: str | None = None
    batch_id: str | None = None
    found: bool = False
    ended: bool = False
    lost: bool = False

    @property
    def key(self) -> str:
        return self.intent.key

    @property
    def lines(self) -> list[BatchLine]:
        return self.intent.lines or []

    @property
    def unfinished(self) -> bool:
        """The provider may hold it and its requests have not all come back into the ledger."""
        return not self.ended and not self.lost


@dataclass
class BatchHistory:
    """Every submission and every attempt of a batch request in a ledger, by key and by call."""

    submissions: dict[str, Submission] = field(default_factory=dict)
    attempts: dict[str, list[Attempt]] = field(default_factory=lambda: defaultdict(list))  # by call id
    recorded: set[str] = field(default_factory=set)  # custom ids whose attempt is in the ledger
    # per call id: the submissions (by key) that carried one of its attempts, with the line
    lines: dict[str, list[tuple[str, BatchLine]]] = field(default_factory=lambda: defaultdict(list))

    def unfinished(self) -> list[Submission]:
        return [s for s in self.submissions.values() if s.unfinished]

    def last_attempt(self, call_id: str) -> int:
        """The highest attempt number a call has been given in any submission (0: none)."""
        numbers = [a.attempt for a in self.attempts.get(call_id, [])]
        numbers += [line.attempt for key, line in self.lines.get(call_id, []) if not self.submissions[key].lost]
        return max(numbers, default=0)

    def add(self, record: BatchEvent | Attempt) -> None:
        if isinstance(record, Attempt):
            if record.batch_key is not None:
                self.attempts[record.call_id].append(record)
                self.recorded.add(f"{record.call_id}-{record.attempt}")
            return
        if record.event == "intent":
            self.submissions[record.key] = Submission(record)
            for line in record.lines or []:
                self.lines[line.call_id].append((record.key, line))
            return
        sub = self.submissions.get(record.key)
        if sub is None:
            return  # a step of an intent the ledger lost with a torn line: nothing to resume
        if record.event == "uploaded":
            sub.file_id = record.file_id
        elif record.event == "submitted":
            sub.batch_id, sub.found = record.batch_id, record.found
        elif record.event == "ended":
            sub.ended = True
        elif record.event == "lost":
            sub.lost = True


def batch_history(run_dir: Path) -> BatchHistory:
    """The batches of a run folder's ledger (empty for a folder without one)."""
    history = BatchHistory()
    if not ledger_path(run_dir).exists():
        return history
    for record in iter_records(run_dir):
        if isinstance(record, BatchEvent | Attempt):
            history.add(record)
    return history


__all__ = ["BatchHistory", "Submission", "batch_history"]
