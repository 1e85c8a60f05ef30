"""A worker's side of what the coordinator owns: its limits, its spend cap, its ledger, transcripts.

Each is the interface the engine already uses, over a `Channel`, so a worker's lanes and pipeline
are the single-process ones unchanged:

- `LeasedLimiter` (a `Limiter`): `acquire` asks the coordinator's limiter of the key for a lease;
  the `Lease` settles or cancels with a tell. 429s, 5xx, successes and headers are told.
- `RemoteSpend` (a `SpendGate`): `reserve` is a round trip; a settle rides with the ledger batch
  holding the attempt's record (`WorkerLedger`), so the coordinator counts spend and record at once.
- `WorkerLedger` (a `BatchWriter`): batches go to the coordinator, and count as durable once it
  has fsynced them in the run's one ledger (`append_durable` waits for that, so a call's intent is
  on disk before its request is sent, as in one process).
- `ForwardedTranscripts` (a transcripts sink): encoded lines go to the coordinator's writer.
- `ClaimedSynthesis` (`SynthesisClaims`): a group's preface is built by the first worker to claim
  it; the others get its record from the coordinator.
"""

from __future__ import annotations

from runner.cluster.channel import Channel
from runner.cluster.messages import (
    Acquire,
    LaneEvent,
    LeaseCancel,
    Leased,
    LeaseSettle,
    Observe,
    Records,
    Reply,
    Reserved,
    SpendRelease,
    SpendReserve,
    SpendSettle,
    SpendWait,
    SynthesisClaim,
    SynthesisDropped,
    SynthesisGiven,
    Transcripts,
    TranscriptsFlush,
)
from runner.engine.limits import LaneStats
from runner.engine.spend import SpendNeed
from runner.engine.synthesis import SynthesisClaims
from runner.errors import RunStopped, SpendCapReached
from runner.ledger.records import Synthesis
from runner.ledger.transcripts import TranscriptRecord, encode_line_into
from runner.ledger.writer import BatchWriter
from runner.types import RateLimitReading

_TRANSCRIPTS_BATCH = 1 << 18  # bytes of transcript lines a worker holds before it sends them


class Lease:
    """One call's capacity, leased from the coordinator's limiter for the key (a `Capacity`)."""

    __slots__ = ("_channel", "_done", "lease")

    def __init__(self, channel: Channel, lease: int) -> None:
        self._channel = channel
        self.lease = lease
        self._done = False

    def settle(self, actual_tokens: int) -> None:
        if not self._done:
            self._done = True
            self._channel.tell(LeaseSettle(self.lease, actual_tokens))

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._channel.tell(LeaseCancel(self.lease))


class LeasedLimiter:
    """A worker's `Limiter` for one lane: every decision is the coordinator's."""

    def __init__(self, channel: Channel, lane: str) -> None:
        self._channel = channel
        self.lane = lane

    async def acquire(self, tokens: int) -> Lease:
        reply = await self._channel.ask(Acquire(self.lane, tokens), orphan=self._give_back)
        assert isinstance(reply, Leased)
        if not reply.lease:
            raise RunStopped(reply.refused or "the run is stopping")
        return Lease(self._channel, reply.lease)

    def _give_back(self, reply: Reply) -> None:
        """A lease granted after its asker was cancelled goes back at once."""
        if isinstance(reply, Leased) and reply.lease:
            self._channel.tell(LeaseCancel(reply.lease))

    def observe(self, reading: RateLimitReading) -> None:
        self._channel.tell(Observe(self.lane, reading))

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        self._channel.tell(LaneEvent(self.lane, "rate_limited", retry_after_s))

    def on_server_error(self) -> None:
        self._channel.tell(LaneEvent(self.lane, "server_error"))

    def on_success(self) -> None:
        self._channel.tell(LaneEvent(self.lane, "success"))

    def stats(self) -> LaneStats:
        """Nothing of its own: the coordinator's limiter is the lane's (its display shows that one)."""
        return LaneStats(
            in_flight=0,
            waiting=0,
            concurrency_limit=0,
            max_concurrency=0,
            rpm_limit=None,
            rpm_level=None,
            tpm_limit=None,
            tpm_level=None,
            paused_until=None,
            paused_for_s=0.0,
            admitted=0,
            n429=0,
            n_server_errors=0,
            retries=0,
        )


class WorkerLedger(BatchWriter):
    """A worker's ledger: its batches (with the spend settled by the attempts they hold) go to the
    coordinator, and are durable once it answers. Run its `run_flusher`; flush before leaving."""

    def __init__(self, channel: Channel, worker: int) -> None:
        super().__init__(f"worker {worker}'s ledger", max_delay_s=0.02)
        self._channel = channel
        self._settles: list[SpendSettle] = []
        self._taken: list[SpendSettle] = []

    def settle_with_next_batch(self, settle: SpendSettle) -> None:
        """Send ``settle`` with the batch holding the next record appended (its attempt's)."""
        self._settles.append(settle)

    def _take(self) -> tuple[bytearray, int]:
        self._taken, self._settles = self._settles, []
        return super()._take()

    async def _write_batch(self, batch: bytearray, count: int) -> None:
        await self._channel.ask(Records(bytes(batch), count, self._taken))
        self.records_written += count

    def _write_sync(self, batch: bytearray, count: int) -> None:
        self._channel.tell(Records(bytes(batch), count, self._taken))
        self.records_written += count


class RemoteSpend:
    """A worker's `SpendGate`: the coordinator's `SpendGuard` decides; a cap once reached is known here."""

    def __init__(self, channel: Channel, ledger: WorkerLedger) -> None:
        self._channel = channel
        self._ledger = ledger
        self.reached: str | None = None

    def raise_if_never_fits(self, need: SpendNeed) -> None:
        # what this worker knows; the coordinator checks again in `reserve`
        if self.reached is not None and need.new_work:
            raise SpendCapReached(self.reached)

    async def reserve(self, need: SpendNeed) -> float | None:
        self.raise_if_never_fits(need)
        reply = await self._channel.ask(SpendReserve(need), orphan=lambda late: self._give_back(need.provider, late))
        assert isinstance(reply, Reserved)
        if reply.refused is not None:
            if need.new_work:
                self.reached = reply.refused
            raise SpendCapReached(reply.refused)
        return reply.usd

    def _give_back(self, provider: str, reply: Reply) -> None:
        """A reservation made after its asker was cancelled goes back (with the next batch; what is
        left when the worker says goodbye, the coordinator gives back itself)."""
        if isinstance(reply, Reserved) and reply.usd is not None:
            self._ledger.settle_with_next_batch(SpendSettle(provider, reply.usd, 0.0))

    async def wait_settled(self) -> None:
        await self._channel.ask(SpendWait())

    def settle(self, provider: str, reserved: float, actual_usd: float) -> None:
        self._ledger.settle_with_next_batch(SpendSettle(provider, reserved, actual_usd))

    def release(self, owner: tuple[str, str]) -> None:
        self._channel.tell(SpendRelease(*owner))


class ForwardedTranscripts:
    """A worker's transcripts sink: lines go to the coordinator's writer, in order."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lines = bytearray()
        self._count = 0

    def append(self, record: TranscriptRecord) -> None:
        encode_line_into(record, self._lines)
        self._count += 1
        if len(self._lines) >= _TRANSCRIPTS_BATCH:
            self._send()

    async def flush(self) -> None:
        """Wait until every line appended so far is on disk in the run's transcripts."""
        self._send()
        await self._channel.ask(TranscriptsFlush())

    def _send(self) -> None:
        if self._count:
            self._channel.tell(Transcripts(bytes(self._lines), self._count))
            self._lines, self._count = bytearray(), 0


class ClaimedSynthesis(SynthesisClaims):
    """A worker's `SynthesisClaims`: the coordinator knows who builds what, and what was built."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def claim(self, key: str) -> Synthesis | None:
        reply = await self._channel.ask(SynthesisClaim(key))
        assert isinstance(reply, SynthesisGiven)
        return reply.synthesis

    def dropped(self, key: str) -> None:
        self._channel.tell(SynthesisDropped(key))


__all__ = ["ClaimedSynthesis", "ForwardedTranscripts", "Lease", "LeasedLimiter", "RemoteSpend", "WorkerLedger"]
