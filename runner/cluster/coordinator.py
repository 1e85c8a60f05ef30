"""The coordinator: one per run, in the process that owns the run's ledger, limits and spend cap.

Workers (processes on this machine, or Ray actors) run jobs; the coordinator decides everything
they share (`runner.cluster.channel.Handler`):

- **Jobs by id.** Each lane's jobs come from the sweep's own feed (`Sweep.lane_jobs`: the same
  order, the same skipping of finished jobs); a worker asks for its lane's next job and gets its
  id and `JobRef`, never its text. The coordinator remembers who holds which job.
- **Leases of the limits.** Each provider key has one `LaneLimiter`, here. A worker's call asks
  for a lease of one request and its tokens (`Acquire`) and settles it with the tokens used, so
  the combined rate of every worker is exactly what one process would send: no 429 with known
  limits. 429s, 5xx and rate-limit headers a worker sees go to the same limiter.
- **The spend cap.** The run's `SpendGuard` is here; a worker's call reserves its worst case
  (`SpendReserve`) before it is sent. What the call cost arrives in the same frame as its ledger
  record (`Records.settles`), so the spend counted is always the ledger's.
- **One ledger, one writer.** Workers send their records as encoded lines; the coordinator appends
  them to the run's one ledger and answers once they are fsynced (so a call's intent is on disk
  before the worker sends its request). Transcripts travel the same way.

A worker that dies (`kill -9`, a lost node) loses nothing that was paid for: its calls still
streaming are ledgered as interrupted with their last recorded spend (as the next process would
after a crash of the whole run), its leases, reservations and commitments go back, and its
unfinished jobs are handed to the workers left. A job whose `JobDone` reached the ledger is not
run again.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field

import anyio
import msgspec

from runner.cluster.messages import (
    Acquire,
    Bye,
    Done,
    Hello,
    JobEnded,
    JobGiven,
    JobStarted,
    LaneEvent,
    LeaseCancel,
    Leased,
    LeaseSettle,
    NextJob,
    Observe,
    Records,
    Reply,
    Request,
    Reserved,
    SpendRelease,
    SpendReserve,
    SpendWait,
    SynthesisClaim,
    SynthesisDropped,
    SynthesisGiven,
    Transcripts,
    TranscriptsFlush,
    Welcome,
)
from runner.config.plan import Job
from runner.engine.limits import LaneLimiter, Reservation
from runner.engine.sweep import RunWiring, Sweep
from runner.errors import SpendCapReached
from runner.ledger.records import Attempt, InFlight, JobDone, Note, Synthesis, decode_lines


@dataclass
class _Worker:
    """What one worker holds of the run, so that its death gives it all back."""

    jobs: dict[str, Job] = field(default_factory=dict)
    leases: set[int] = field(default_factory=set)
    holds: Counter[tuple[str, float]] = field(default_factory=Counter)  # spend reserved: (provider, usd)
    commitments: set[tuple[str, str]] = field(default_factory=set)
    in_flight: dict[tuple[str, int], InFlight] = field(default_factory=dict)  # its last sample per attempt
    building: set[str] = field(default_factory=set)  # synthesis stages it claimed and has not written yet
    said_bye: bool = False


class Coordinator:
    """Hands out jobs, leases and spend to workers, and writes what they record (see the module)."""

    def __init__(self, sweep: Sweep, wiring: RunWiring, workers: int) -> None:
        self.sweep = sweep
        self.wiring = wiring
        self.workers = workers
        self._feeds: dict[str, Iterator[Job]] = {name: sweep.lane_jobs(name, wiring.completed) for name in sweep.lanes}
        self._requeued: dict[str, deque[Job]] = {name: deque() for name in sweep.lanes}
        self._held: Counter[str] = Counter()  # jobs handed out and not yet ended, per lane
        self._done: set[str] = set()  # job ids whose completion reached the ledger through here
        self._changed = anyio.Event()
        self._leases: dict[int, Reservation] = {}
        self._next_lease = 1
        self._workers: dict[int, _Worker] = {}
        # every group's synthesis, once written (the ledger's on a resume), and who builds the others
        self._synthesis: dict[str, Synthesis] = dict(sweep.state.synthesis) if sweep.state else {}
        self._building: dict[str, int] = {}
        self._limiters: dict[str, LaneLimiter] = {}
        for name, lane in sweep.lanes.items():
            assert isinstance(lane.limiter, LaneLimiter), "the coordinator's lanes hold the run's own limiters"
            self._limiters[name] = lane.limiter
        self.connected = 0
        self.lost: list[int] = []  # workers that went away without saying goodbye

    # -- the transport's entry points ---------------------------------------------------------

    def receive(self, worker: int, body: Request) -> Reply | Awaitable[Reply] | None:
        if isinstance(body, Hello):
            return self._hello(worker)
        state = self._workers.get(worker)
        if state is None:  # a worker already given up for lost: nothing it says counts any more
            return JobGiven(None, None) if isinstance(body, NextJob) else None
        if isinstance(body, Records):
            self._records(state, body)
            return self._flushed()
        if isinstance(body, NextJob):
            return self._next_job(worker, body.lane)
        if isinstance(body, Acquire):
            return self._lease(worker, body)
        if isinstance(body, SpendReserve):
            return self._reserve(state, body)
        if isinstance(body, SpendWait):
            return self._spend_settled()
        if isinstance(body, TranscriptsFlush):
            return self._transcripts_flushed()
        if isinstance(body, Bye):
            state.said_bye = True
            return Done()
        if isinstance(body, SynthesisClaim):
            return self._claim(worker, body.key)
        self._told(worker, state, body)
        return None

    def worker_gone(self, worker: int) -> None:
        state = self._workers.pop(worker, None)
        if state is None:
            return
        self.connected -= 1
        if not state.said_bye:
            self.lost.append(worker)
        self._give_back(state)
        self._recover_in_flight(worker, state)
        self._requeue(worker, state)
        self._wake()

    # -- asks -----------------------------------------------------------------------------------

    def _hello(self, worker: int) -> Welcome:
        self._workers[worker] = _Worker()
        self.connected += 1
        state = self.sweep.state
        return Welcome(
            sim_url=self.wiring.sim_url,
            workers=self.workers,
            transcripts=self.wiring.transcripts is not None,
            synthesis=dict(state.synthesis) if state else {},
            run_dir=str(self.sweep.run_dir),
        )

    async def _next_job(self, worker: int, lane: str) -> Reply:
        """The lane's next job for ``worker``; none once nothing is left that a lost worker could
        hand back (the asker waits while other workers still hold jobs of the lane)."""
        while True:
            state = self._workers.get(worker)
            if state is None or self.sweep.progress.stopping or self.sweep.lanes[lane].halted is not None:
                return JobGiven(None, None)
            job = self._requeued[lane].popleft() if self._requeued[lane] else next(self._feeds[lane], None)
            if job is not None:
                state.jobs[job.job_id] = job
                self._held[lane] += 1
                return JobGiven(job.job_id, job.ref)
            if not self._held[lane]:
                return JobGiven(None, None)
            changed = self._changed
            await changed.wait()

    def _lease(self, worker: int, body: Acquire) -> Reply | Awaitable[Reply]:
        """A lease now when the key's limiter admits the call at once (the common case: no task to
        wait in), else once it does."""
        halted = self.sweep.lanes[body.lane].halted
        if halted is not None:
            return Leased(0, refused=halted)
        reservation = self._limiters[body.lane].try_acquire(body.tokens)
        if reservation is None:
            return self._acquire(worker, body)
        return self._leased(worker, body.lane, reservation)

    async def _acquire(self, worker: int, body: Acquire) -> Reply:
        reservation = await self._limiters[body.lane].acquire(body.tokens)
        return self._leased(worker, body.lane, reservation)

    def _leased(self, worker: int, lane: str, reservation: Reservation) -> Reply:
        halted = self.sweep.lanes[lane].halted
        state = self._workers.get(worker)
        if halted is not None or state is None:
            reservation.cancel()
            return Leased(0, refused=halted or "the worker is gone")
        lease, self._next_lease = self._next_lease, self._next_lease + 1
        self._leases[lease] = reservation
        state.leases.add(lease)
        return Leased(lease)

    def _reserve(self, state: _Worker, body: SpendReserve) -> Reply:
        need = body.need
        spend = self.sweep.spend
        committed = need.owner is not None and need.owner in spend.committed
        try:
            usd = spend.try_reserve(need)
        except SpendCapReached as error:
            return Reserved(None, refused=str(error))
        if usd is not None:
            state.holds[(need.provider, usd)] += 1
            if need.owner is not None and not committed and need.owner in spend.committed:
                state.commitments.add(need.owner)
        return Reserved(usd)

    async def _claim(self, worker: int, key: str) -> Reply:
        """The group's synthesis once another worker wrote it; None to the first to ask (it builds)."""
        while key not in self._synthesis:
            state = self._workers.get(worker)
            if state is None:
                return SynthesisGiven(None)
            if key not in self._building:
                self._building[key] = worker
                state.building.add(key)
                return SynthesisGiven(None)
            changed = self._changed
            await changed.wait()
        return SynthesisGiven(self._synthesis[key])

    async def _spend_settled(self) -> Reply:
        await self.sweep.spend.wait_settled()
        return Done()

    async def _flushed(self) -> Reply:
        await self.wiring.ledger.flush()
        return Done()

    async def _transcripts_flushed(self) -> Reply:
        if self.wiring.transcripts is not None:
            await self.wiring.transcripts.flush()
        return Done()

    # -- tells ------------------------------------------------------------------------------------

    def _told(self, worker: int, state: _Worker, body: Request) -> None:
        if isinstance(body, LeaseSettle | LeaseCancel):
            state.leases.discard(body.lease)
            reservation = self._leases.pop(body.lease, None)
            if reservation is not None and isinstance(body, LeaseSettle):
                reservation.settle(body.tokens)
            elif reservation is not None:
                reservation.cancel()
        elif isinstance(body, LaneEvent):
            self._lane_event(body)
        elif isinstance(body, Observe):
            self.sweep.lanes[body.lane].limiter.observe(body.reading)
        elif isinstance(body, SpendRelease):
            owner = (body.job_id, body.instance)
            state.commitments.discard(owner)
            self.sweep.spend.release(owner)
        elif isinstance(body, JobStarted):
            self.sweep.progress.job_started(body.lane, body.model, body.job_id)
        elif isinstance(body, JobEnded):
            self._job_ended(state, body)
        elif isinstance(body, SynthesisDropped):
            self._drop_build(state, body.key)
        elif isinstance(body, Transcripts) and self.wiring.transcripts is not None:
            self.wiring.transcripts.append_encoded(body.lines, body.count)

    def _lane_event(self, body: LaneEvent) -> None:
        limiter = self.sweep.lanes[body.lane].limiter
        if body.kind == "rate_limited":
            limiter.on_rate_limited(body.retry_after_s)
        elif body.kind == "server_error":
            limiter.on_server_error()
        else:
            limiter.on_success()

    def _job_ended(self, state: _Worker, body: JobEnded) -> None:
        if state.jobs.pop(body.job_id, None) is not None:
            self._held[body.lane] -= 1
        self.sweep.job_ended(body.lane, body.model, body.job_id, body.end, body.message)
        self.sweep.progress.job_left(body.lane, body.model, body.job_id)
        self._wake()

    def _records(self, state: _Worker, body: Records) -> None:
        """Append a worker's batch to the ledger, and settle the spend of the attempts it holds."""
        self.wiring.ledger.append_encoded(body.lines, body.count)
        for record in decode_lines(body.lines):
            if isinstance(record, InFlight):
                state.in_flight[(record.call_id, record.attempt)] = record
            elif isinstance(record, Attempt):
                state.in_flight.pop((record.call_id, record.attempt), None)
                self._count(record)
            elif isinstance(record, JobDone):
                self._done.add(record.job_id)
            elif isinstance(record, Synthesis):
                self._synthesis[record.key] = record
                self._drop_build(state, record.key)
        spend = self.sweep.spend
        for settle in body.settles:
            state.holds[(settle.provider, settle.reserved)] -= 1
            spend.settle(settle.provider, settle.reserved, settle.actual)
        state.holds = +state.holds  # drop the settled

    def _drop_build(self, state: _Worker, key: str) -> None:
        """The worker's build of ``key`` is over (written, or failed): waiters look again."""
        state.building.discard(key)
        self._building.pop(key, None)
        self._wake()

    def _count(self, attempt: Attempt) -> None:
        """The attempt in the display's counters of its lane (the worker's own lane did the rest)."""
        counters = self.sweep.lanes[attempt.provider].counters
        counters.attempts += 1
        counters.calls += attempt.attempt == 1
        if attempt.status in ("error", "interrupted"):
            counters.errors += 1
            counters.errors_by_kind[attempt.error_class or attempt.status] += 1
            counters.n429 += attempt.error_class == "rate_limit"
        input_tokens = attempt.input_tokens or 0
        output_tokens = attempt.output_tokens if attempt.output_tokens is not None else attempt.output_tokens_counted
        counters.usd += attempt.usd
        counters.input_tokens += input_tokens
        counters.output_tokens += output_tokens
        tally = counters.tally(attempt.model)
        tally.attempts += 1
        tally.input_tokens += input_tokens
        tally.output_tokens += output_tokens

    # -- a worker gone ----------------------------------------------------------------------------

    def _give_back(self, state: _Worker) -> None:
        """Its leases' slots (the tokens stay charged: the calls may have reached the provider), its
        reservations and its commitments."""
        for lease in state.leases:
            self._leases.pop(lease).release()
        spend = self.sweep.spend
        for (provider, usd), calls in state.holds.items():
            for _ in range(calls):
                spend.settle(provider, usd, 0.0)
        for owner in state.commitments:
            spend.release(owner)
        for key in list(state.building):
            self._drop_build(state, key)

    def _recover_in_flight(self, worker: int, state: _Worker) -> None:
        """Its calls still streaming, ledgered as interrupted with their last recorded spend."""
        ledger, spend = self.wiring.ledger, self.sweep.spend
        for sample in state.in_flight.values():
            attempt = msgspec.structs.replace(
                sample.as_attempt(),
                status="interrupted",
                error_class="crash",
                error=f"worker {worker} died mid-call: spend counted up to its last in-flight record",
            )
            ledger.append(attempt)
            spend.charge(attempt.provider, attempt.usd)
            self._count(attempt)
        if not state.said_bye:
            message = (
                f"worker {worker} went away: {len(state.in_flight)} call(s) ledgered as interrupted, "
                f"{len(state.jobs)} unfinished job(s) handed to the other workers"
            )
            ledger.append(Note(at=time.time(), kind="worker_lost", message=message))

    def _requeue(self, worker: int, state: _Worker) -> None:
        progress = self.sweep.progress
        for job in state.jobs.values():
            lane = self.sweep.loaded.manifest.models[job.model].provider
            self._held[lane] -= 1
            progress.job_left(lane, job.model, job.job_id)
            if job.job_id in self._done:  # its completion is in the ledger: done, whoever said so
                progress.job_finished(lane, job.model, job.job_id)
            else:
                self._requeued[lane].append(job)

    def left_undone(self) -> list[tuple[str, Job]]:
        """Jobs nobody ran because every worker is gone: (lane, job), for the run's outcome."""
        left = [(lane, job) for lane, jobs in self._requeued.items() for job in jobs]
        if not self.sweep.progress.stopping:
            left += [(lane, job) for lane, feed in self._feeds.items() for job in feed]
        return left

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


__all__ = ["Coordinator"]
