"""Calls already paid for, found by key in run folders' transcripts: what trace reuse draws on.

`TraceStore.open(run_dirs)` indexes the transcripts of each run folder (the run's own, and those
named by ``run.reuse`` / ``--reuse``) by the keys their calls were written with
(`runner.config.reuse_keys`), reading only the small fields of each record; the text of a call is
decoded from its gzip member when a job asks for it (`StoredCall.record`).

What can serve (docs/reuse.md):

- a call its run's ledger shows as paid and well ended: its last attempt ``ok``, ``length`` or
  ``cancelled`` (a stream we cut at its last budget), never ``error``, ``truncated`` or
  ``interrupted``; or a call that run itself reused (its ``Reuse`` record names what it cost);
- a trace whose stream ended with ``stop`` (it ended by itself: it serves every budget), or else
  up to its **reach**: the largest budget it was cut at with that many tokens in the cut (the
  tokens up to there were final when the stream was cut, so a cut at any budget up to the reach,
  made again from the stored text with the same encoding, is exactly the cut the stream made);
- of several traces with one key, the one reaching furthest.

Errors: a folder that is not a run (`ConfigError`), a run without transcripts (`NoTranscripts`,
exit 2: transcripts must be on for a run to serve), a damaged member (`TranscriptsCorrupt`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from runner.errors import ConfigError, NoTranscripts
from runner.ledger.reader import ledger_path
from runner.ledger.transcripts import (
    CallText,
    CutMark,
    Member,
    decode_member,
    read_member,
    transcripts_path,
    walk,
)

# an attempt that ended one of these ways left a call whose text is whole
GOOD_STATUSES = frozenset({"ok", "length", "cancelled"})
# a trace whose stream ended one of these ways holds text up to its reach
GOOD_TRACE_FINISHES = frozenset({"stop", "length", "cancelled_at_budget"})
_MEMBERS_KEPT = 8  # decoded members kept for the next job (neighbouring jobs share members)


@dataclass(frozen=True)
class StoredCall:
    """A call that can be reused: where its record is, and what it serves.

    Attributes:
        run_dir: the run folder it is in.
        member: the index of the transcripts member holding its record.
        call_id, job_id, kind, budget, finish: as its record has them.
        reach: traces: the largest budget it serves; None: every budget (it ended by itself).
        usd: what it cost in the run that paid for it.
        tokens: traces: the tokens of its cut at the reach (its traced text's tokens if it ended).
    """

    run_dir: Path
    member: int
    call_id: str
    job_id: str
    kind: str
    budget: int | None
    finish: str
    reach: int | None
    usd: float
    tokens: int = 0

    def serves(self, last_budget: int) -> bool:
        """Whether it holds every cut up to ``last_budget``."""
        return self.reach is None or last_budget <= self.reach


class _LightCall(msgspec.Struct, tag_field="type", tag="call", kw_only=True, gc=False):
    """The fields of a `CallText` the index needs (its texts are skipped)."""

    job_id: str
    call_id: str
    kind: str
    finish: str
    budget: int | None = None
    traced: str | None = None
    cuts: list[CutMark] = []
    key: str | None = None
    reused_from: str | None = None


class _Other(msgspec.Struct, tag_field="type", gc=False):
    pass


class _OtherHeader(_Other, tag="header"):
    pass


class _OtherShared(_Other, tag="shared"):
    pass


class _OtherJob(_Other, tag="job"):
    pass


class _OtherGrade(_Other, tag="grade"):
    pass


_light_decoder = msgspec.json.Decoder(_LightCall | _OtherHeader | _OtherShared | _OtherJob | _OtherGrade)


class _LedgerAttempt(msgspec.Struct, tag_field="type", tag="attempt", kw_only=True, gc=False):
    call_id: str
    attempt: int
    status: str
    usd: float = 0.0


class _LedgerReuse(msgspec.Struct, tag_field="type", tag="reuse", kw_only=True, gc=False):
    call_id: str
    mode: str
    source_usd: float = 0.0


class _LedgerOther(msgspec.Struct, tag_field="type", gc=False):
    pass


class _LedgerRun(_LedgerOther, tag="run"):
    pass


class _LedgerSnapshot(_LedgerOther, tag="snapshot"):
    pass


class _LedgerJob(_LedgerOther, tag="job"):
    pass


class _LedgerSynthesis(_LedgerOther, tag="synthesis"):
    key: str
    text: str


class _LedgerNote(_LedgerOther, tag="note"):
    pass


class _LedgerInFlight(_LedgerOther, tag="inflight"):
    pass


class _LedgerBatch(_LedgerOther, tag="batch"):
    pass


_ledger_decoder = msgspec.json.Decoder(
    _LedgerAttempt
    | _LedgerReuse
    | _LedgerRun
    | _LedgerSnapshot
    | _LedgerJob
    | _LedgerSynthesis
    | _LedgerNote
    | _LedgerInFlight
    | _LedgerBatch
)


@dataclass
class _Paid:
    """What a run's ledger says of its calls: each call's dollars and its last attempt's status."""

    usd: dict[str, float] = field(default_factory=dict)
    last: dict[str, tuple[int, str]] = field(default_factory=dict)
    # calls it reused (served, or continued from): what the stored part cost where it was paid
    reused_usd: dict[str, float] = field(default_factory=dict)
    prefaces: dict[str, str] = field(default_factory=dict)  # synthesis key -> the preface it built

    def good(self, call_id: str) -> bool:
        """Its last attempt ended well; or it was served by reuse (no attempt of its own)."""
        last = self.last.get(call_id)
        return last[1] in GOOD_STATUSES if last is not None else call_id in self.reused_usd

    def cost(self, call_id: str) -> float:
        return self.usd.get(call_id, 0.0) + self.reused_usd.get(call_id, 0.0)


def _read_paid(run_dir: Path) -> _Paid:
    """The ledger's calls, in one decode of its whole lines (a line this index cannot read is
    skipped: `ledger verify` names broken lines; a torn last line is left out)."""
    paid = _Paid()
    data = ledger_path(run_dir).read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    try:
        records = _ledger_decoder.decode_lines(whole)
    except msgspec.DecodeError:
        records = [r for r in map(_decoded, whole.splitlines()) if r is not None]
    for record in records:
        if isinstance(record, _LedgerAttempt):
            paid.usd[record.call_id] = paid.usd.get(record.call_id, 0.0) + record.usd
            if record.attempt >= paid.last.get(record.call_id, (0, ""))[0]:
                paid.last[record.call_id] = (record.attempt, record.status)
        elif isinstance(record, _LedgerReuse) and record.mode != "requested":
            paid.reused_usd[record.call_id] = record.source_usd
        elif isinstance(record, _LedgerSynthesis):
            paid.prefaces.setdefault(record.key, record.text)
    return paid


def _decoded(line: bytes) -> _LedgerOther | _LedgerAttempt | _LedgerReuse | None:
    try:
        return _ledger_decoder.decode(line) if line.strip() else None
    except msgspec.DecodeError:
        return None


def reach_of(call: _LightCall | CallText) -> tuple[int | None, int]:
    """A stored trace's reach and the tokens there (see the module docstring); (0, 0): none."""
    if call.finish == "stop":
        return None, max((m.tokens for m in call.cuts), default=0)
    full = [m for m in call.cuts if m.tokens == m.budget]
    if not full:
        return 0, 0
    last = max(full, key=lambda m: m.budget)
    return last.budget, last.tokens


@dataclass
class SourceInfo:
    """What one run folder holds for reuse (for notes and errors)."""

    run_dir: Path
    traces: int = 0  # traces with a key that can serve
    calls: int = 0  # other calls with a key that can serve
    skipped: int = 0  # keyed calls that cannot (failed, interrupted, cut short)


class TraceStore:
    """Keyed calls of some run folders, best first (see the module docstring)."""

    def __init__(self) -> None:
        self.traces: dict[str, StoredCall] = {}
        self.calls: dict[str, StoredCall] = {}
        self.sources: list[SourceInfo] = []
        # PDP / LEAP prefaces the runs built, by synthesis key (the estimate prices a group's
        # prompts with them: its synthesis calls will be served, so it builds the same preface)
        self.prefaces: dict[str, str] = {}
        self._members: dict[Path, list[Member]] = {}
        self._decoded: OrderedDict[tuple[Path, int], dict[str, CallText]] = OrderedDict()

    @classmethod
    def open(cls, run_dirs: Iterable[Path], *, required: Iterable[Path] = ()) -> TraceStore:
        """Index the transcripts of ``run_dirs``; a folder without transcripts is skipped unless it
        is in ``required`` (the runs named for reuse), where it is an error.

        Raises:
            ConfigError: a required folder has no ledger (it is not a run folder).
            NoTranscripts: a required run has no transcripts.
            TranscriptsCorrupt: a damaged member.
        """
        store = cls()
        needed = {Path(p).resolve() for p in required}
        seen: set[Path] = set()
        for run_dir in run_dirs:
            resolved = Path(run_dir).resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if check_source(Path(run_dir), resolved in needed):
                store._index(Path(run_dir))
        return store

    def __bool__(self) -> bool:
        return bool(self.traces or self.calls)

    def trace(self, key: str) -> StoredCall | None:
        return self.traces.get(key)

    def call(self, key: str) -> StoredCall | None:
        return self.calls.get(key)

    def record(self, stored: StoredCall) -> CallText:
        """The stored call's whole record (decoded from its member, kept for a few jobs more).

        Raises:
            TranscriptsCorrupt: the member is damaged (the file changed since it was indexed).
        """
        where = (stored.run_dir, stored.member)
        calls = self._decoded.get(where)
        if calls is None:
            path = transcripts_path(stored.run_dir)
            member = self._members[stored.run_dir][stored.member]
            with open(path, "rb") as handle:
                records = decode_member(read_member(handle, member, path), path, member)
            calls = {r.call_id: r for r in records if isinstance(r, CallText)}
            self._decoded[where] = calls
            if len(self._decoded) > _MEMBERS_KEPT:
                self._decoded.popitem(last=False)
        else:
            self._decoded.move_to_end(where)
        return calls[stored.call_id]

    def _index(self, run_dir: Path) -> None:
        paid = _read_paid(run_dir)
        for key, text in paid.prefaces.items():
            self.prefaces.setdefault(key, text)
        info = SourceInfo(run_dir=run_dir)
        path = transcripts_path(run_dir)
        members = walk(path).members
        self._members[run_dir] = members
        for position, call in _keyed_calls(path, members):
            if not paid.good(call.call_id) or (call.traced is not None and not _good_trace(call)):
                info.skipped += 1
                continue
            stored = _stored(run_dir, position, call, paid.cost(call.call_id))
            if call.traced is not None:
                info.traces += 1
                _keep_best(self.traces, call.key or "", stored)
            else:
                info.calls += 1
                self.calls.setdefault(call.key or "", stored)
        self.sources.append(info)


def check_source(run_dir: Path, required: bool) -> bool:
    """Whether ``run_dir`` can serve: a run folder with transcripts. Raises for a ``required`` one
    that cannot, else returns False.

    Raises:
        ConfigError: a required folder has no ledger.
        NoTranscripts: a required run has no transcripts.
    """
    if not ledger_path(run_dir).is_file():
        if required:
            raise ConfigError(f"--reuse {run_dir}: no ledger.jsonl here; name a run folder (ledgers/<run name>)")
        return False
    if not transcripts_path(run_dir).is_file():
        if required:
            raise NoTranscripts(
                f"--reuse {run_dir}: this run has no {transcripts_path(run_dir).name}, so none of its traces can be "
                "reused (it ran with --no-transcripts or run.transcripts = false, or before transcripts existed)"
            )
        return False
    return True


def _keyed_calls(path: Path, members: list[Member]) -> Iterator[tuple[int, _LightCall]]:
    with open(path, "rb") as handle:
        for position, member in enumerate(members):
            try:
                records = _light_decoder.decode_lines(read_member(handle, member, path))
            except msgspec.DecodeError:
                records = decode_member(read_member(handle, member, path), path, member)  # names the damage
            for record in records:
                if isinstance(record, _LightCall) and record.key:
                    yield position, record


def _good_trace(call: _LightCall) -> bool:
    return call.finish in GOOD_TRACE_FINISHES and reach_of(call)[0] != 0


def _stored(run_dir: Path, position: int, call: _LightCall, usd: float) -> StoredCall:
    reach, tokens = reach_of(call) if call.traced is not None else (None, 0)
    return StoredCall(
        run_dir=run_dir,
        member=position,
        call_id=call.call_id,
        job_id=call.job_id,
        kind=call.kind,
        budget=call.budget,
        finish=call.finish,
        reach=reach,
        usd=usd,
        tokens=tokens,
    )


def _keep_best(index: dict[str, StoredCall], key: str, stored: StoredCall) -> None:
    """Keep the trace reaching furthest (one that ended by itself reaches every budget)."""
    known = index.get(key)
    if known is None or (known.reach is not None and (stored.reach is None or stored.reach > known.reach)):
        index[key] = stored


__all__ = ["GOOD_STATUSES", "SourceInfo", "StoredCall", "TraceStore", "check_source", "reach_of"]
