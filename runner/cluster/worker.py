"""One worker: the single-process lanes and pipeline, fed and limited by the coordinator.

A worker opens its own lanes (HTTP sessions, adapters) with the coordinator's limits, spend cap
and ledger behind them (`runner.cluster.remote`), then runs its share of each lane's concurrency:
each of its tasks asks for the lane's next job, rebuilds it from its `JobRef` (and checks the id),
runs it as one process would (`runner.engine.sweep.run_one`), waits until the job's records are in
the run's ledger, and tells the coordinator how it ended. When the lane has nothing left it says
goodbye. The same function runs in a process of this machine (`runner.cluster.processes`, over a
Unix socket) and in a Ray actor (`runner.cluster.ray_backend`, over TCP): only the stream differs.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import anyio
from anyio.abc import ByteStream

from runner.cluster.channel import Channel, SocketChannel
from runner.cluster.messages import Bye, Hello, JobEnded, JobGiven, JobStarted, NextJob, Welcome
from runner.cluster.remote import ClaimedSynthesis, ForwardedTranscripts, LeasedLimiter, RemoteSpend, WorkerLedger
from runner.config.manifest import LoadedManifest
from runner.config.plan import job_at
from runner.engine.lane import Lane
from runner.engine.lanes import open_lanes
from runner.engine.pipeline import Pipeline
from runner.engine.preflight import preflight
from runner.engine.reuse import Reuser, open_store
from runner.engine.sweep import build_pipeline, run_one
from runner.engine.transcribe import NO_TRANSCRIPTS, Transcriber
from runner.errors import LedgerError


async def run_connected(stream: ByteStream, worker: int, loaded: LoadedManifest, token: str = "") -> None:
    """`run_worker` over a connected byte stream (a Unix socket, or TCP on Ray)."""
    channel = SocketChannel(stream)
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.run)
        await run_worker(channel, worker, loaded, token)
        await channel.drain()
        tg.cancel_scope.cancel()
    await stream.aclose()


async def run_worker(channel: Channel, worker: int, loaded: LoadedManifest, token: str = "") -> None:
    """Run jobs the coordinator hands out until none is left; then flush and say goodbye."""
    welcome = await channel.ask(Hello(worker, token))
    assert isinstance(welcome, Welcome)
    checked = preflight(loaded, run_dir=None)  # the models, prices and keys, as this machine sees them
    ledger = WorkerLedger(channel, worker)
    transcripts = ForwardedTranscripts(channel) if welcome.transcripts else None
    async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as flushing:
        flushing.start_soon(ledger.run_flusher)
        lanes = await open_lanes(
            loaded,
            stack,
            sim_url=welcome.sim_url,
            keys=checked.keys,
            ledger=ledger,
            spend=RemoteSpend(channel, ledger),
            limiter_of=lambda name: LeasedLimiter(channel, name),
        )
        transcriber = Transcriber(transcripts) if transcripts is not None else NO_TRANSCRIPTS
        synthesis, claims = dict(welcome.synthesis), ClaimedSynthesis(channel)
        # calls already paid for, read from the run's folders as this worker starts (as one process reads them)
        reuse = Reuser(open_store(loaded, Path(welcome.run_dir)), ledger, keys=welcome.transcripts)
        pipeline = build_pipeline(
            loaded, checked.models, checked.prices, lanes, ledger, synthesis, transcriber, claims, reuse
        )
        async with anyio.create_task_group() as work:
            for name, lane in lanes.items():
                share = math.ceil(loaded.manifest.providers[name].max_concurrency / welcome.workers)
                for _ in range(share):
                    work.start_soon(_work, channel, loaded, lane, pipeline, ledger)
        if transcripts is not None:
            await transcripts.flush()
        await ledger.flush()
        flushing.cancel_scope.cancel()
    ledger.close_sync()
    await channel.ask(Bye())  # answered once everything told before it has been taken


async def _work(channel: Channel, loaded: LoadedManifest, lane: Lane, pipeline: Pipeline, ledger: WorkerLedger) -> None:
    while True:
        given = await channel.ask(NextJob(lane.name))
        assert isinstance(given, JobGiven)
        if given.job_id is None or given.ref is None:
            return
        job = job_at(loaded, given.ref)
        if job.job_id != given.job_id:  # the two sides planned different runs: nothing may be recorded
            raise LedgerError(f"job {given.job_id} is {job.job_id} here: the worker's manifest differs")
        channel.tell(JobStarted(lane.name, job.model, job.job_id))
        end, message = await run_one(pipeline, job)
        await ledger.flush()  # the job's records are in the run's ledger before it counts as ended
        channel.tell(JobEnded(lane.name, job.model, job.job_id, end, message))
        lane.counters.forget_job(job.job_id)


__all__ = ["run_connected", "run_worker"]
