"""The transcripts file of a run: what every call said, compressed, crash-safe, readable by zcat.

``<run>/transcripts.jsonl.gz`` holds JSON Lines of the records below, in gzip members of one batch
each (a multi-member gzip file: ``zcat``, ``gzip -d``, pandas and DuckDB read it as one text).
The ledger stays the record of money; transcripts hold the words and point into the ledger by
``job_id``, ``instance`` (the job's execution) and ``call_id``.

Record kinds (tag ``type``, first in every line):

- ``header``  one per process that appended to the file (first run and every resume)
- ``job``     a job's execution started: its identity, budgets, trace fidelity and gold answer
- ``call``    one per call that returned (a trace, a forced answer, a synthesis call): the
  messages sent, the streamed reasoning and content kept apart, and for a trace the cut of
  each budget (tokens, and the character offset into its traced text where the cut falls)
- ``grade``   a graded answer: the call it grades, the extracted answer, the gold, the score
- ``shared``  a long text many calls send (a PDP / LEAP preface), stored once per process

Messages are stored without the long text they repeat: a forced answer's prompt holds its
trace's cut, and a PDP prompt its group's preface. Each such stretch is cut out of the stored
message and named by a `Splice`, which `restore` puts back (exact: the same characters at the
same place). A cut comes back from the ``call`` record of the same execution's trace, a preface
from its ``shared`` record; the writer only splices what an earlier record of the file holds.

Members: a gzip member whose header carries an extra field ``AT`` with the member's total length
and its uncompressed length (gzip tools ignore it), so the file can be walked member by member
without decompressing. A batch is written with one ``write`` and fsynced: a ``kill -9`` can leave
at most one partial member at the end, which `recover` cuts off (the next writer does so on open).
A damaged member anywhere else is `TranscriptsCorrupt`.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

from runner.errors import TranscriptsCorrupt
from runner.types import CallKind, Message

TRANSCRIPTS_FILE = "transcripts.jsonl.gz"
TRANSCRIPT_FORMAT_VERSION = 1
# a message text at least this long that several calls send is stored once, as a `SharedText`
SHARED_MIN_CHARS = 256

Traced = Literal["reasoning", "content"]


def transcripts_path(run_dir: Path) -> Path:
    """The transcripts file of a run folder."""
    return Path(run_dir) / TRANSCRIPTS_FILE


# ---- records ------------------------------------------------------------------------------------


class Splice(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A stretch of a message stored elsewhere, put back at character ``at`` of the stored text.

    Exactly one of ``cut`` (the first ``cut`` characters of the traced text of the same
    execution's trace) and ``shared`` (the id of a `SharedText`) is set.
    """

    at: int
    cut: int | None = None
    shared: str | None = None


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    role: str
    content: str
    splices: list[Splice] = []


class TranscriptHeader(msgspec.Struct, tag="header", kw_only=True):
    run_id: str
    started_at: float
    tool_version: str
    format_version: int = TRANSCRIPT_FORMAT_VERSION


class SharedText(msgspec.Struct, tag="shared", kw_only=True):
    id: str  # sha256 of the text, 16 hex digits
    text: str


class JobText(msgspec.Struct, tag="job", kw_only=True):
    job_id: str
    instance: str
    model: str
    dataset: str
    method: str
    problem_id: str
    sample: int
    budgets: list[int]
    fidelity: str
    gold: str


class CutMark(msgspec.Struct, frozen=True, kw_only=True):
    """Where a budget's cut falls in a trace: its tokens, and the character offset into the traced text."""

    budget: int
    tokens: int
    chars: int


class CallText(msgspec.Struct, tag="call", kw_only=True, omit_defaults=True):
    """One call that returned: what was sent and everything that streamed back (its last attempt)."""

    job_id: str
    instance: str
    call_id: str
    attempts: int  # attempts the call took; the text is its last one's (see the ledger for the rest)
    kind: CallKind
    model: str
    messages: list[StoredMessage]
    reasoning: str
    content: str
    finish: str
    budget: int | None = None  # answer calls: the budget they answer
    traced: Traced | None = None  # trace calls: which text the cuts are in
    cuts: list[CutMark] = []
    # the trace key (traces) or call key (others) a later run finds it by (`runner.config.reuse_keys`)
    key: str | None = None
    # not paid here: taken from this call of an earlier run ("<run folder>/<call id>"; the ledger's
    # `Reuse` record says more); a continued trace names the stored trace it went on from
    reused_from: str | None = None


class GradeText(msgspec.Struct, tag="grade", kw_only=True, omit_defaults=True):
    """The task's verdict on an answer call (``budget`` None: a synthesis sample's answer)."""

    job_id: str
    instance: str
    call_id: str
    answer: str  # the extracted answer ("" when nothing could be parsed)
    gold: str
    score: float
    budget: int | None = None
    exact: float | None = None


TranscriptRecord = TranscriptHeader | SharedText | JobText | CallText | GradeText

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TranscriptRecord)


def encode_line_into(record: TranscriptRecord, buffer: bytearray) -> None:
    """Append ``record`` to ``buffer`` as one JSON line."""
    _encoder.encode_into(record, buffer, -1)
    buffer.append(10)


# ---- messages without their repeated text ----------------------------------------------------------


def store_message(message: Message, stretches: Sequence[tuple[str, Splice]]) -> StoredMessage:
    """``message`` with each stretch's text cut out where it first occurs, named by its splice.

    ``stretches`` pairs a text with the splice that names it (its ``at`` is filled in here);
    stretches that do not occur, are empty or overlap one already cut are left in place.
    """
    found: list[tuple[int, str, Splice]] = []
    for text, splice in stretches:
        at = message.content.find(text) if text else -1
        if at >= 0 and all(at >= s + len(t) or at + len(text) <= s for s, t, _ in found):
            found.append((at, text, splice))
    if not found:
        return StoredMessage(role=message.role, content=message.content)
    found.sort(key=lambda item: item[0])
    kept: list[str] = []
    splices: list[Splice] = []
    position = removed = 0
    for at, text, splice in found:
        kept.append(message.content[position:at])
        splices.append(msgspec.structs.replace(splice, at=at - removed))
        position, removed = at + len(text), removed + len(text)
    kept.append(message.content[position:])
    return StoredMessage(role=message.role, content="".join(kept), splices=splices)


def restore(stored: StoredMessage, resolve: Callable[[Splice], str | None]) -> Message:
    """The message as sent. A splice ``resolve`` cannot find becomes a visible marker.

    Raises nothing: a missing stretch (its record lost in a torn tail) reads
    ``[… N characters of the trace not in the transcripts …]`` instead.
    """
    if not stored.splices:
        return Message(stored.role, stored.content)
    parts: list[str] = []
    position = 0
    for splice in stored.splices:
        parts.append(stored.content[position : splice.at])
        text = resolve(splice)
        if text is None:
            what = f"{splice.cut} characters of the trace" if splice.cut is not None else f"shared text {splice.shared}"
            text = f"[… {what} not in the transcripts …]"
        parts.append(text)
        position = splice.at
    parts.append(stored.content[position:])
    return Message(stored.role, "".join(parts))


# ---- members ----------------------------------------------------------------------------------------

# gzip member header: magic, deflate, FEXTRA, mtime 0, no extra flags, OS unknown; then XLEN and
# one subfield "AT" of 8 bytes: the member's total length and its uncompressed length
_HEAD = struct.Struct("<4sIBBH2sHII")
_MAGIC = b"\x1f\x8b\x08\x04"
_HEAD_SIZE = _HEAD.size  # 24
_TRAILER = struct.Struct("<II")


def encode_member(raw: bytes | bytearray, level: int) -> bytes:
    """One gzip member holding ``raw`` (whole JSON lines), with its lengths in the header."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = compressor.compress(raw) + compressor.flush()
    total = _HEAD_SIZE + len(body) + _TRAILER.size
    head = _HEAD.pack(_MAGIC, 0, 0, 255, 12, b"AT", 8, total, len(raw) & 0xFFFFFFFF)
    return head + body + _TRAILER.pack(zlib.crc32(raw), len(raw) & 0xFFFFFFFF)


class Member(msgspec.Struct, frozen=True):
    """Where one member lies in the file."""

    offset: int
    length: int
    raw_length: int


class Walk(msgspec.Struct, kw_only=True):
    """The members of a file, and how much past the last whole one is a torn tail."""

    members: list[Member]
    end: int  # the end of the last whole member
    torn_bytes: int  # bytes after it: a member cut short by a crash (or still being written)


def walk(path: Path, start: int = 0) -> Walk:
    """Walk the members from ``start`` (a member boundary) without decompressing them.

    Raises:
        TranscriptsCorrupt: bytes that are not one of our members, before the end of the file.
    """
    members: list[Member] = []
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = start
        while offset < size:
            handle.seek(offset)
            head = handle.read(_HEAD_SIZE)
            if len(head) < _HEAD_SIZE:
                break  # a header cut short: torn
            magic, _mtime, _xfl, _os, xlen, field, field_len, total, raw_length = _HEAD.unpack(head)
            if magic != _MAGIC or xlen != 12 or field != b"AT" or field_len != 8 or total < _HEAD_SIZE + 8:
                raise TranscriptsCorrupt(f"{path}: byte {offset}: not a transcripts member (damaged file?)")
            if offset + total > size:
                break  # cut short: torn
            members.append(Member(offset, total, raw_length))
            offset += total
    return Walk(members=members, end=offset, torn_bytes=size - offset)


def read_member(handle: BinaryIO, member: Member, path: Path) -> bytes:
    """A member's JSON lines, its checksum verified.

    Raises:
        TranscriptsCorrupt: the member does not decompress or fails its checksum.
    """
    handle.seek(member.offset)
    data = handle.read(member.length)
    try:
        return zlib.decompress(data, wbits=31)
    except zlib.error as exc:
        raise TranscriptsCorrupt(f"{path}: member at byte {member.offset}: {exc}") from None


def decode_member(data: bytes, path: Path, member: Member) -> list[TranscriptRecord]:
    """The records of one member's lines.

    Raises:
        TranscriptsCorrupt: a line is not a transcript record.
    """
    try:
        return _decoder.decode_lines(data)
    except msgspec.DecodeError as exc:
        raise TranscriptsCorrupt(f"{path}: member at byte {member.offset}: not transcript records: {exc}") from None


def iter_records(run_dir: Path, start: int = 0) -> Iterator[tuple[Member, list[TranscriptRecord]]]:
    """Every whole member of a run's transcripts from ``start``, with its records (a torn tail is skipped).

    Raises:
        TranscriptsCorrupt: a damaged member.
        FileNotFoundError: the run has no transcripts file.
    """
    path = transcripts_path(run_dir)
    walked = walk(path, start)
    with open(path, "rb") as handle:
        for member in walked.members:
            yield member, decode_member(read_member(handle, member, path), path, member)


def recover(path: Path) -> int:
    """Cut a torn last member off; return how many bytes were removed (0: the file was whole).

    Raises:
        TranscriptsCorrupt: the file is damaged before its end (nothing is cut then).
    """
    if not path.exists():
        return 0
    walked = walk(path)
    if not walked.torn_bytes:
        return 0
    with open(path, "rb+") as handle:
        handle.truncate(walked.end)
        handle.flush()
        os.fsync(handle.fileno())
    return walked.torn_bytes


__all__ = [
    "SHARED_MIN_CHARS",
    "TRANSCRIPTS_FILE",
    "CallText",
    "CutMark",
    "GradeText",
    "JobText",
    "Member",
    "SharedText",
    "Splice",
    "StoredMessage",
    "TranscriptHeader",
    "TranscriptRecord",
    "Walk",
    "encode_line_into",
    "encode_member",
    "iter_records",
    "recover",
    "restore",
    "store_message",
    "transcripts_path",
    "walk",
]
