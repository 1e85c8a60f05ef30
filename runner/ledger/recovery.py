"""After a crash: cut a torn last line off, and turn calls that were streaming into records.

A `kill -9` can leave at most one partial line at the end of the ledger (a batch is written with
one `write` call, in order); `recover` cuts it off. Calls still streaming had their spend so far
written as `InFlight` records; `interrupted_in_flight` turns the last of each into the
attempt's `Attempt` (status "interrupted"), so the spend is counted.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import msgspec

from runner.ledger.reader import LedgerState, ledger_path, load_state
from runner.ledger.records import LEGACY_IN_FLIGHT, Attempt, InFlight, flatten_legacy


def recover(path: Path) -> int:
    """Cut a torn final line off; return how many bytes were removed (0: the file was whole)."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # scan back to the last newline; a torn line is short compared with the file
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


class _Skip(msgspec.Struct, tag_field="type", gc=False):
    pass


class _TailAttempt(_Skip, tag="attempt"):
    call_id: str
    attempt: int


class _TailRun(_Skip, tag="run"):
    pass


class _TailSnapshot(_Skip, tag="snapshot"):
    pass


class _TailJob(_Skip, tag="job"):
    pass


class _TailSynthesis(_Skip, tag="synthesis"):
    pass


class _TailNote(_Skip, tag="note"):
    pass


class _TailReuse(_Skip, tag="reuse"):
    pass


class _TailBatch(_Skip, tag="batch"):
    pass


# in-flight recovery needs only attempt keys and InFlight records; everything else is skipped
_tail_decoder = msgspec.json.Decoder(
    _TailAttempt | InFlight | _TailRun | _TailSnapshot | _TailJob | _TailSynthesis | _TailNote | _TailBatch | _TailReuse
)


def interrupted_in_flight(path: Path) -> list[Attempt]:
    """Attempts a crash left with `InFlight` records and no `Attempt`: their last known spend.

    Only the records since the last run header are read: every earlier process's leftovers were
    recovered when the next one opened the ledger (recovery is keyed by call and attempt, so a
    second pass over the same records adds nothing).
    """
    if not path.exists() or path.stat().st_size == 0:
        return []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm.find(b'"type":"inflight"') < 0:
            return []  # the common case: nothing was ever in flight at a batch, or no tracking
        start = mm.rfind(b'\n{"type":"run"') + 1
        end = mm.rfind(b"\n") + 1
        tail = mm[start:end]
    if LEGACY_IN_FLIGHT in tail:  # a format-1 ledger: its in-flight records nest their attempt
        tail = flatten_legacy(tail)
    last: dict[tuple[str, int], Attempt] = {}
    finished: set[tuple[str, int]] = set()
    for rec in _tail_decoder.decode_lines(tail):
        if isinstance(rec, InFlight):
            last[(rec.call_id, rec.attempt)] = rec.as_attempt()
        elif isinstance(rec, _TailAttempt):
            finished.add((rec.call_id, rec.attempt))
    return [
        msgspec.structs.replace(
            a,
            status="interrupted",
            error_class="crash",
            error="the process died mid-call: spend counted up to its last in-flight record",
        )
        for key, a in last.items()
        if key not in finished
    ]


def state_after_recovery(run_dir: Path) -> LedgerState | None:
    """The ledger's summary as the next process to open it will see it: with the spend of the
    calls a crash left streaming, which opening the ledger writes as interrupted attempts.

    A resume seeds its totals and spend cap from this; reading the ledger alone would leave the
    last crash's in-flight spend out of both. None for a run folder with no ledger.
    """
    path = ledger_path(run_dir)
    if not path.exists():
        return None
    state = load_state(run_dir)
    for attempt in interrupted_in_flight(path):
        state.attempts += 1
        state.total_usd += attempt.usd
        state.usd_by_provider[attempt.provider] += attempt.usd
        state.usd_by_job[attempt.job_id] += attempt.usd
    return state
