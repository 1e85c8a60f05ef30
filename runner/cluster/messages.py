"""What worker processes and the coordinator say to each other, and its one encoding (msgpack).

A worker *asks* (a `Frame` with a non-zero id, answered by a `Frame` with the same id) or *tells*
(id 0, no answer). The same frames travel over a Unix socket between the processes of one machine
and over TCP between Ray actors (`runner.cluster.channel`).

Asks: `Hello` → `Welcome`; `NextJob` → `JobGiven`; `Acquire` → `Leased`; `SpendReserve` →
`Reserved`; `SynthesisClaim` → `SynthesisGiven`; `SpendWait`, `Records`, `TranscriptsFlush`,
`Bye` → `Done`. Tells: `JobStarted`, `JobEnded`, `LeaseSettle`, `LeaseCancel`, `LaneEvent`,
`Observe`, `SpendRelease`, `SynthesisDropped`, `Transcripts`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from runner.config.plan import JobRef
from runner.engine.spend import SpendNeed
from runner.engine.sweep import JobEnd
from runner.ledger.records import Synthesis
from runner.types import RateLimitReading


class _Message(msgspec.Struct, tag_field="t", array_like=True, gc=False):
    pass


# -- asks, and their answers --------------------------------------------------------------------


class Hello(_Message, tag="hello"):
    worker: int
    token: str = ""  # over TCP (Ray): the run's secret, so that only its own workers are heard


class Welcome(_Message, tag="welcome"):
    sim_url: str | None  # the simulator the coordinator started for the run, if any
    workers: int  # how many share the run: each runs this share of a lane's concurrency
    transcripts: bool
    synthesis: dict[str, Synthesis]  # the prefaces the ledger already holds (a resume)
    run_dir: str = ""  # the run folder: calls already paid for are read from it and `run.reuse`


class NextJob(_Message, tag="next_job"):
    lane: str


class JobGiven(_Message, tag="job_given"):
    job_id: str | None  # None: the lane has no more work for this worker
    ref: JobRef | None


class Acquire(_Message, tag="acquire"):
    lane: str
    tokens: int


class Leased(_Message, tag="leased"):
    lease: int  # 0: refused (the run stops: ``refused`` says why)
    refused: str | None = None


class SpendReserve(_Message, tag="spend_reserve"):
    need: SpendNeed


class Reserved(_Message, tag="reserved"):
    usd: float | None  # None: fits only once calls in flight settle
    refused: str | None = None  # the spend cap is reached: why


class SpendWait(_Message, tag="spend_wait"):
    pass


class SpendSettle(_Message, tag="spend_settle"):
    """Rides with the ledger batch that holds the attempt's record: spend and record arrive as one."""

    provider: str
    reserved: float
    actual: float


class Records(_Message, tag="records"):
    lines: bytes  # whole ledger lines, encoded by the worker
    count: int
    settles: list[SpendSettle]


class TranscriptsFlush(_Message, tag="transcripts_flush"):
    pass


class SynthesisClaim(_Message, tag="synthesis_claim"):
    key: str


class SynthesisGiven(_Message, tag="synthesis_given"):
    synthesis: Synthesis | None  # None: the asker builds it


class Done(_Message, tag="done"):
    pass


# -- tells ------------------------------------------------------------------------------------


class JobStarted(_Message, tag="job_started"):
    lane: str
    model: str
    job_id: str


class JobEnded(_Message, tag="job_ended"):
    lane: str
    model: str
    job_id: str
    end: JobEnd
    message: str


class LeaseSettle(_Message, tag="lease_settle"):
    lease: int
    tokens: int


class LeaseCancel(_Message, tag="lease_cancel"):
    lease: int


class LaneEvent(_Message, tag="lane_event"):
    lane: str
    kind: Literal["rate_limited", "server_error", "success"]
    retry_after_s: float | None = None


class Observe(_Message, tag="observe"):
    lane: str
    reading: RateLimitReading


class SpendRelease(_Message, tag="spend_release"):
    job_id: str
    instance: str


class SynthesisDropped(_Message, tag="synthesis_dropped"):
    key: str


class Transcripts(_Message, tag="transcripts"):
    lines: bytes
    count: int


class Bye(_Message, tag="bye"):
    pass


Request = (
    Hello
    | NextJob
    | Acquire
    | SpendReserve
    | SpendWait
    | Records
    | TranscriptsFlush
    | SynthesisClaim
    | SynthesisDropped
    | JobStarted
    | JobEnded
    | LeaseSettle
    | LeaseCancel
    | LaneEvent
    | Observe
    | SpendRelease
    | Transcripts
    | Bye
)
Reply = Welcome | JobGiven | Leased | Reserved | SynthesisGiven | Done
Message = Request | Reply


class Frame(msgspec.Struct, array_like=True, gc=False):
    id: int  # 0: a tell; else the ask this frame asks or answers
    body: Message


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Frame)


def encode(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def decode(data: bytes | memoryview) -> Frame:
    return _decoder.decode(data)


__all__ = [
    "Acquire",
    "Bye",
    "Done",
    "Frame",
    "Hello",
    "JobEnded",
    "JobGiven",
    "JobStarted",
    "LaneEvent",
    "LeaseCancel",
    "LeaseSettle",
    "Leased",
    "Message",
    "NextJob",
    "Observe",
    "Records",
    "Reply",
    "Request",
    "Reserved",
    "SpendRelease",
    "SpendReserve",
    "SpendSettle",
    "SpendWait",
    "SynthesisClaim",
    "SynthesisDropped",
    "SynthesisGiven",
    "Transcripts",
    "TranscriptsFlush",
    "Welcome",
    "decode",
    "encode",
]
