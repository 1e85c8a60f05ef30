"""Run a whole sweep: prepare everything that can fail for free, then drive the lanes.

Flow: `preflight` checks the plan, the models (encodings, fidelity), prices, keys and the run
folder's past, the same check `validate` and `estimate` make (errors here spend nothing; completed
jobs are skipped on resume) → start the
built-in simulator if a provider asks for it → open the ledger and the lanes → one feeder per lane
pulls jobs lazily from the plan into a small memory stream, the lane's groups taking turns
(`runner.engine.feed`), and the lane's workers run them, every lane at once →
SIGINT/SIGTERM stops feeding, lets in-flight calls finish for a grace period, then cancels; a
second signal cancels at once (`shutdown`). Every attempt is ledgered either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runner import __version__
from runner.config.calls import ModelPlan
from runner.config.manifest import LoadedManifest
from runner.config.plan import Job, count_jobs, expand_jobs
from runner.engine.batch import BatchPipeline, open_batch_engine
from runner.engine.batches import BatchEngine
from runner.engine.calling import ModelContext
from runner.engine.eta import Plan
from runner.engine.feed import lane_jobs
from runner.engine.lane import Lane, RecordSink
from runner.engine.lanes import open_lanes
from runner.engine.pipeline import Pipeline
from runner.engine.preflight import Preflight, preflight
from runner.engine.progress import RunProgress
from runner.engine.reuse import NO_REUSE, Reuser, open_store
from runner.engine.shutdown import watch_signals
from runner.engine.simulator import start_simulator
from runner.engine.snapshots import RunSnapshot
from runner.engine.spend import SpendGuard
from runner.engine.synthesis import SynthesisClaims
from runner.engine.transcribe import NO_TRANSCRIPTS, Transcriber
from runner.errors import LaneStopped, ProviderError, RunStopped, SpendCapReached
from runner.ledger.prices import ModelPrice
from runner.ledger.records import Attempt, Note, RunHeader, Synthesis
from runner.ledger.transcript_writer import TranscriptWriter, WriterStats, open_transcripts
from runner.ledger.transcripts import TranscriptHeader, transcripts_path, walk
from runner.ledger.writer import LedgerWriter, open_ledger

# shows the run while the sweep is inside it; what it yields on entering is the display's own business
Display = Callable[[Callable[[], RunSnapshot]], contextlib.AbstractAsyncContextManager[object]]

# how a job's execution ended, as the sweep's progress and the coordinator of worker processes take it
JobEnd = Literal["finished", "failed", "stopped", "spend_cap", "lane_stopped"]


@dataclass
class RunWiring:
    """What a run opened that a driver of worker processes hands on (`runner.cluster`)."""

    ledger: LedgerWriter
    transcripts: TranscriptWriter | None  # None: transcripts off
    sim_url: str | None
    completed: set[str]  # job ids the ledger already finished (a resume skips them)


# runs the jobs instead of this process's lanes (`SweepOptions.driver`): worker processes or Ray actors
Driver = Callable[["Sweep", RunWiring], Awaitable[None]]


@dataclass
class SweepOptions:
    grace_s: float = 30.0
    new_run: bool = False
    usd_estimate: float | None = None  # the expected cost of what is left to do
    # the estimate's expected work per (lane, model), of what is left to do: the ETA starts from it
    plans: dict[tuple[str, str], Plan] = field(default_factory=dict)
    # run only these jobs of the manifest (a pilot, `anytime estimate --pilot`); None: all of them
    only: frozenset[str] | None = None
    transcripts: bool | None = None  # None: the manifest's run.transcripts (on by default)
    # None: this process's lanes run the jobs; else who does (worker processes, `runner.cluster`)
    driver: Driver | None = None
    # SIGINT / SIGTERM stop the run gracefully; off where signals are not this thread's (a Ray actor)
    signals: bool = True


@dataclass
class SweepOutcome:
    run_dir: Path
    jobs_total: int
    jobs_run: int
    jobs_skipped: int
    usd_this_process: float
    usd_total: float
    jobs_failed: int
    stopped: str | None  # why the run stopped early (spend cap, signal), else None
    warnings: list[str] = field(default_factory=list)
    # lanes stopped by a configuration error: the message names the model, the URL and the fix
    lanes_stopped: dict[str, str] = field(default_factory=dict)
    # what this process wrote to the transcripts (None: transcripts off)
    transcripts: WriterStats | None = None


class Sweep:
    """One process's run of a manifest. Everything that can fail for free fails in `__init__`."""

    def __init__(self, loaded: LoadedManifest, options: SweepOptions, checked: Preflight | None = None) -> None:
        """Check the manifest (`preflight`), unless ``checked`` is its result for this run folder."""
        self.loaded = loaded
        self.options = options
        self.run_dir = loaded.run_dir(options.new_run)
        checked = checked or preflight(loaded, run_dir=self.run_dir)
        self.table = checked.table
        self.prices = checked.prices
        self.models: dict[str, ModelPlan] = checked.models
        self.warnings = checked.warnings
        self.keys = checked.keys
        self.state = checked.state
        self.transcripts = loaded.manifest.run.transcripts if options.transcripts is None else options.transcripts
        if self.transcripts and transcripts_path(self.run_dir).exists():
            walk(transcripts_path(self.run_dir))  # a damaged file stops the run here, before any call
        # calls already paid for (this run's earlier processes, `run.reuse`): read before any call
        self.reuse_store = open_store(loaded, self.run_dir)
        self.spend = SpendGuard(
            loaded.manifest.run.max_usd,
            {name: p.max_usd for name, p in loaded.manifest.providers.items()},
            spent=self.state.total_usd if self.state else 0.0,
            spent_by_provider=dict(self.state.usd_by_provider) if self.state else None,
        )
        self.usd_at_start = self.spend.spent
        self.progress = RunProgress(
            run_id=self.run_dir.name,
            jobs_total=count_jobs(loaded) if options.only is None else len(options.only),
            usd_cap=loaded.manifest.run.max_usd,
            usd_estimate=options.usd_estimate,
            usd_earlier=self.usd_at_start,
            plans=dict(options.plans),
        )
        self.lanes: dict[str, Lane] = {}
        self._noted_stops: set[str] = set()
        self._ledger: RecordSink | None = None
        self._transcript_stats: WriterStats | None = None
        self._transcript_writer: TranscriptWriter | None = None
        self._engine: BatchEngine | None = None  # run.mode = "batch"

    def snapshot(self) -> RunSnapshot:
        return self.progress.snapshot(self.lanes, self.spend)

    async def run(self, display: Display) -> SweepOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            # the display comes first: starting the simulator and opening the ledger show on it
            self.progress.phase = "starting the simulator" if self.loaded.uses_simulator() else "opening the ledger"
            await stack.enter_async_context(display(self.snapshot))
            sim_url = await start_simulator(self.loaded, stack)
            self.progress.phase = "opening the ledger"
            ledger = await stack.enter_async_context(open_ledger(self.run_dir))
            ledger.append(self._header())
            for plan in self.models.values():
                if plan.warning:
                    ledger.append(Note(at=time.time(), kind="encoding_fallback", message=plan.warning))
                if plan.fidelity_note:
                    ledger.append(Note(at=time.time(), kind="fidelity_guess", message=plan.fidelity_note))
            transcriber = await self._open_transcripts(stack, ledger)
            self.lanes = await open_lanes(
                self.loaded,
                stack,
                sim_url=sim_url,
                keys=self.keys,
                ledger=ledger,
                spend=self.spend,
            )
            contexts = self._contexts(ledger, transcriber)
            synthesis = dict(self.state.synthesis) if self.state else {}
            self._ledger = ledger
            self.progress.lanes_opened(
                {name: {m: count_jobs(self.loaded, [m]) for m in self.models_of(name)} for name in self.lanes}
            )
            if self.loaded.manifest.run.mode == "batch":
                engine = open_batch_engine(self.loaded, self.lanes, contexts, ledger, self.spend, self.run_dir)
                engine.on_attempt = self._counted
                self._engine = engine
                self.progress.batch_source = engine.snapshots
                batched = BatchPipeline(self.loaded, contexts, ledger, synthesis, engine, transcripts=transcriber)
                await self._drive_batches(batched, ledger, engine)
            else:
                pipeline = Pipeline(self.loaded, contexts, ledger, synthesis, transcripts=transcriber)
                completed = self.state.completed_jobs if self.state else set()
                await self._drive(pipeline, RunWiring(ledger, self._transcript_writer, sim_url, completed))
            if self.progress.stopping:
                ledger.append(Note(at=time.time(), kind="stopped", message=self.progress.stopping))
            outcome = self._outcome()
            ledger.append(
                Note(
                    at=time.time(),
                    kind="run_end",
                    message=f"spent ${outcome.usd_this_process:.6f} in this process, ${outcome.usd_total:.6f} in total",
                    usd_total=outcome.usd_total,
                )
            )
        return outcome

    def _contexts(self, ledger: RecordSink, transcriber: Transcriber) -> dict[str, ModelContext]:
        """Each model as the engine calls it, on its lane, with the calls already paid for that
        may stand in for its own (`runner.engine.reuse`)."""
        reuser = Reuser(self.reuse_store, ledger, keys=self.transcripts)
        return model_contexts(self.models, self.prices, self.lanes, transcriber, reuser)

    def _outcome(self) -> SweepOutcome:
        p = self.progress
        return SweepOutcome(
            run_dir=self.run_dir,
            jobs_total=p.jobs_total,
            jobs_run=p.jobs_done - p.jobs_skipped,
            jobs_skipped=p.jobs_skipped,
            jobs_failed=p.jobs_failed,
            usd_this_process=self.spend.spent - self.usd_at_start,
            usd_total=self.spend.spent,
            stopped=p.stopping,
            warnings=self.warnings,
            lanes_stopped={name: str(lane.stopped) for name, lane in self.lanes.items() if lane.stopped},
            transcripts=self._transcript_stats,
        )

    def _header(self) -> RunHeader:
        return RunHeader(
            run_id=self.run_dir.name,
            tool_version=__version__,
            started_at=time.time(),
            manifest_path=str(self.loaded.path),
            manifest_sha256=self.loaded.sha256,
            manifest=msgspec.to_builtins(self.loaded.manifest),
            prices={key: self.table.describe(price) for key, price in self.prices.items()},
            resumed=self.state is not None,
            overrides=None if self.loaded.overrides.is_empty() else msgspec.to_builtins(self.loaded.overrides),
        )

    async def _open_transcripts(self, stack: contextlib.AsyncExitStack, ledger: RecordSink) -> Transcriber:
        """The run's transcripts, unless they are off; a torn member a crash left is cut off and noted."""
        if not self.transcripts:
            return NO_TRANSCRIPTS
        header = TranscriptHeader(run_id=self.run_dir.name, started_at=time.time(), tool_version=__version__)
        writer = await stack.enter_async_context(open_transcripts(self.run_dir, header))
        self._transcript_stats, self._transcript_writer = writer.stats, writer
        if writer.stats.torn_bytes_cut:
            message = f"cut {writer.stats.torn_bytes_cut} bytes of a transcripts member torn by a crash off the end"
            ledger.append(Note(at=time.time(), kind="torn_transcripts", message=message))
        return Transcriber(writer)

    def models_of(self, lane: str) -> list[str]:
        return [m for m in self.loaded.selected("models") if self.loaded.manifest.models[m].provider == lane]

    async def _drive(self, pipeline: Pipeline, wiring: RunWiring) -> None:
        async with anyio.create_task_group() as tg:
            if self.options.signals:
                tg.start_soon(
                    watch_signals, tg.cancel_scope, self.options.grace_s, lambda: self.progress.stopping, self.interrupt
                )
            if self.options.driver is not None:
                await self.options.driver(self, wiring)
            else:
                await self._drive_lanes(pipeline, wiring.completed)
            tg.cancel_scope.cancel()  # all work done: stop the signal watcher

    async def _drive_lanes(self, pipeline: Pipeline, completed: set[str]) -> None:
        async with anyio.create_task_group() as work:
            for name in self.lanes:
                workers = self.loaded.manifest.providers[name].max_concurrency
                # a small buffer keeps the plan lazy: jobs are expanded only as workers free up
                send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=min(workers, 64))
                work.start_soon(self._feed, name, self.models_of(name), completed, send)
                for _ in range(workers):
                    work.start_soon(self._work, name, pipeline, receive.clone())
                receive.close()

    def lane_jobs(self, name: str, completed: set[str]) -> Iterator[Job]:
        """The lane's jobs still to run, in feeding order (jobs the ledger finished are counted as
        skipped as they come up)."""
        for job in lane_jobs(self.loaded, self.models_of(name)):
            if self.options.only is not None and job.job_id not in self.options.only:
                continue
            if job.job_id in completed:
                self.progress.job_skipped(name, job.model)
                continue
            yield job

    async def _drive_batches(self, pipeline: Pipeline, ledger: RecordSink, engine: BatchEngine) -> None:
        """Batch mode: every job at once, each waiting on the engine, which batches their calls."""
        completed = self.state.completed_jobs if self.state else set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                watch_signals, tg.cancel_scope, self.options.grace_s, lambda: self.progress.stopping, self.interrupt
            )
            async with anyio.create_task_group() as work:
                engine.bind(work)
                await engine.adopt_unfinished()  # before any job asks: nothing is sent twice
                for job in expand_jobs(self.loaded):
                    name = self.loaded.manifest.models[job.model].provider
                    if self.options.only is not None and job.job_id not in self.options.only:
                        continue
                    if job.job_id in completed:
                        self.progress.job_skipped(name, job.model)
                        continue
                    engine.enter()
                    work.start_soon(self._batch_job, name, pipeline, ledger, job, engine)
            tg.cancel_scope.cancel()

    async def _batch_job(
        self, name: str, pipeline: Pipeline, ledger: RecordSink, job: Job, engine: BatchEngine
    ) -> None:
        self.progress.job_started(name, job.model, job.job_id)
        try:
            if not self.progress.stopping:
                end, message = await run_one(pipeline, job)
                self.job_ended(name, job.model, job.job_id, end, message)
        finally:
            engine.leave()
            self.progress.job_left(name, job.model, job.job_id)
            self.lanes[name].counters.forget_job(job.job_id)

    def _counted(self, attempt: Attempt) -> None:
        """A batch request's attempt was ledgered: the lane's counters show it, as a streamed one's."""
        counters = self.lanes[attempt.provider].counters
        counters.attempts += 1
        counters.input_tokens += attempt.billed_input
        counters.output_tokens += attempt.billed_output
        counters.usd += attempt.usd
        tally = counters.tally(attempt.model)
        tally.attempts += 1
        tally.input_tokens += attempt.billed_input
        tally.output_tokens += attempt.billed_output
        if attempt.status == "error":
            counters.errors += 1
            counters.errors_by_kind[attempt.error_class or "provider"] += 1

    async def _feed(self, name: str, models: list[str], completed: set[str], send: MemoryObjectSendStream[Job]) -> None:
        lane = self.lanes[name]
        async with send:
            for job in self.lane_jobs(name, completed):
                if self.progress.stopping or lane.stopped is not None:
                    return
                await send.send(job)

    async def _work(self, name: str, pipeline: Pipeline, receive: MemoryObjectReceiveStream[Job]) -> None:
        async with receive:
            async for job in receive:
                if self.progress.stopping:
                    continue  # drain without starting anything new, so the feeder sees the stop
                self.progress.job_started(name, job.model, job.job_id)
                try:
                    end, message = await run_one(pipeline, job)
                    self.job_ended(name, job.model, job.job_id, end, message)
                finally:
                    self.progress.job_left(name, job.model, job.job_id)
                    self.lanes[name].counters.forget_job(job.job_id)

    def job_ended(self, name: str, model: str, job_id: str, end: JobEnd, message: str) -> None:
        """Count how a job's execution ended (here, or in a worker process)."""
        if end == "finished":
            self.progress.job_finished(name, model, job_id)
        elif end == "failed":  # the pipeline noted the failed execution (job_failed, with its instance)
            self.progress.job_finished(name, model, job_id, failed=True)
        elif end == "spend_cap":
            self.progress.stop(f"spend cap reached: {message}")
        elif end == "lane_stopped":
            self._lane_stopped(name, message)
        # "stopped": the job stays unfinished, and a resume redoes it

    def interrupt(self, reason: str) -> None:
        """A signal: from this moment no attempt starts on any lane, and the ledger says when."""
        self.progress.stop(reason)
        for lane in self.lanes.values():
            lane.halt(reason)
        if self._engine is not None:
            self._engine.halt(reason)
        if self._ledger is not None:
            self._ledger.append(Note(at=time.time(), kind="interrupted", message=reason))

    def _lane_stopped(self, provider: str, message: str) -> None:
        """One note per stopped lane; its queued jobs drain without a call (the lane refuses them)."""
        if provider not in self._noted_stops and self._ledger is not None:
            self._noted_stops.add(provider)
            self._ledger.append(Note(at=time.time(), kind="lane_stopped", message=message))


def build_pipeline(
    loaded: LoadedManifest,
    models: dict[str, ModelPlan],
    prices: dict[str, ModelPrice],
    lanes: dict[str, Lane],
    ledger: RecordSink,
    synthesis: dict[str, Synthesis],
    transcriber: Transcriber,
    claims: SynthesisClaims | None = None,
    reuse: Reuser = NO_REUSE,
) -> Pipeline:
    """The pipeline that runs this process's jobs on its lanes (the run's, or a worker's)."""
    contexts = model_contexts(models, prices, lanes, transcriber, reuse)
    return Pipeline(loaded, contexts, ledger, synthesis, transcripts=transcriber, claims=claims)


def model_contexts(
    models: dict[str, ModelPlan],
    prices: dict[str, ModelPrice],
    lanes: dict[str, Lane],
    transcriber: Transcriber,
    reuse: Reuser = NO_REUSE,
) -> dict[str, ModelContext]:
    """Each model as the engine calls it, on its lane, with the calls already paid for that may
    stand in for its own (`runner.engine.reuse`)."""
    return {
        key: ModelContext(
            plan=plan, lane=lanes[plan.config.provider], price=prices[key], transcripts=transcriber, reuse=reuse
        )
        for key, plan in models.items()
    }


async def run_one(pipeline: Pipeline, job: Job) -> tuple[JobEnd, str]:
    """Run one execution of a job; how it ended, and the error's message."""
    end: JobEnd = "finished"
    message = ""
    try:
        await pipeline.run_job(job)
    except* RunStopped:
        end = "stopped"  # the job stays unfinished: a resume redoes it
    except* SpendCapReached as group:
        end, message = "spend_cap", str(group.exceptions[0])
    except* LaneStopped as group:
        if end != "spend_cap":
            end, message = "lane_stopped", str(group.exceptions[0])
    except* ProviderError as group:
        if end == "finished":  # a stop above says more about the run than one failed job
            end, message = "failed", str(group.exceptions[0])
    return end, message


@contextlib.asynccontextmanager
async def no_display(_get: Callable[[], RunSnapshot]) -> AsyncIterator[None]:
    yield
