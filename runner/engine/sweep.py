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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runner import __version__
from runner.config.calls import ModelPlan
from runner.config.manifest import LoadedManifest
from runner.config.plan import Job, count_jobs
from runner.engine.calling import ModelContext
from runner.engine.feed import lane_jobs
from runner.engine.lane import Lane, RecordSink
from runner.engine.lanes import open_lanes
from runner.engine.pipeline import Pipeline
from runner.engine.preflight import Preflight, preflight
from runner.engine.progress import RunProgress
from runner.engine.shutdown import watch_signals
from runner.engine.simulator import start_simulator
from runner.engine.snapshots import RunSnapshot
from runner.engine.spend import SpendGuard
from runner.errors import LaneStopped, ProviderError, RunStopped, SpendCapReached
from runner.ledger.records import JobDone, Note, RunHeader
from runner.ledger.writer import open_ledger

# shows the run while the sweep is inside it; what it yields on entering is the display's own business
Display = Callable[[Callable[[], RunSnapshot]], contextlib.AbstractAsyncContextManager[object]]


@dataclass
class SweepOptions:
    grace_s: float = 30.0
    new_run: bool = False
    usd_estimate: float | None = None


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
        self.spend = SpendGuard(
            loaded.manifest.run.max_usd,
            {name: p.max_usd for name, p in loaded.manifest.providers.items()},
            spent=self.state.total_usd if self.state else 0.0,
            spent_by_provider=dict(self.state.usd_by_provider) if self.state else None,
        )
        self.usd_at_start = self.spend.spent
        self.progress = RunProgress(
            run_id=self.run_dir.name,
            jobs_total=count_jobs(loaded),
            usd_cap=loaded.manifest.run.max_usd,
            usd_estimate=options.usd_estimate,
        )
        self.lanes: dict[str, Lane] = {}
        self._noted_stops: set[str] = set()
        self._ledger: RecordSink | None = None

    def snapshot(self) -> RunSnapshot:
        return self.progress.snapshot(self.lanes, self.spend)

    async def run(self, display: Display) -> SweepOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            sim_url = await start_simulator(self.loaded, stack)
            ledger = await stack.enter_async_context(open_ledger(self.run_dir))
            ledger.append(self._header())
            for plan in self.models.values():
                if plan.warning:
                    ledger.append(Note(at=time.time(), kind="encoding_fallback", message=plan.warning))
                if plan.fidelity_note:
                    ledger.append(Note(at=time.time(), kind="fidelity_guess", message=plan.fidelity_note))
            self.lanes = await open_lanes(
                self.loaded,
                stack,
                sim_url=sim_url,
                keys=self.keys,
                ledger=ledger,
                spend=self.spend,
                on_tokens=self.progress.on_tokens,
            )
            contexts = {
                key: ModelContext(plan=plan, lane=self.lanes[plan.config.provider], price=self.prices[key])
                for key, plan in self.models.items()
            }
            synthesis = dict(self.state.synthesis) if self.state else {}
            pipeline = Pipeline(self.loaded, contexts, ledger, synthesis, on_job_done=self._job_done)
            self._ledger = ledger
            await stack.enter_async_context(display(self.snapshot))
            await self._drive(pipeline, ledger)
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
        )

    def _job_done(self, _done: JobDone) -> None:
        self.progress.jobs_done += 1

    async def _drive(self, pipeline: Pipeline, ledger: RecordSink) -> None:
        completed = self.state.completed_jobs if self.state else set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                watch_signals, tg.cancel_scope, self.options.grace_s, lambda: self.progress.stopping, self._interrupt
            )
            async with anyio.create_task_group() as work:
                for name in self.lanes:
                    models = [
                        m for m in self.loaded.selected("models") if self.loaded.manifest.models[m].provider == name
                    ]
                    workers = self.loaded.manifest.providers[name].max_concurrency
                    # a small buffer keeps the plan lazy: jobs are expanded only as workers free up
                    send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=min(workers, 64))
                    work.start_soon(self._feed, self.lanes[name], models, completed, send)
                    for _ in range(workers):
                        work.start_soon(self._work, pipeline, ledger, receive.clone())
                    receive.close()
            tg.cancel_scope.cancel()  # all work done: stop the signal watcher

    async def _feed(
        self, lane: Lane, models: list[str], completed: set[str], send: MemoryObjectSendStream[Job]
    ) -> None:
        async with send:
            for job in lane_jobs(self.loaded, models):
                if job.job_id in completed:
                    self.progress.jobs_done += 1
                    self.progress.jobs_skipped += 1
                    continue
                if self.progress.stopping or lane.stopped is not None:
                    return
                await send.send(job)

    async def _work(self, pipeline: Pipeline, ledger: RecordSink, receive: MemoryObjectReceiveStream[Job]) -> None:
        async with receive:
            async for job in receive:
                if self.progress.stopping:
                    continue  # drain without starting anything new, so the feeder sees the stop
                try:
                    await pipeline.run_job(job)
                except* RunStopped:
                    pass  # the job stays unfinished: a resume redoes it
                except* SpendCapReached as group:
                    self.progress.stop(f"spend cap reached: {group.exceptions[0]}")
                except* LaneStopped as group:
                    self._lane_stopped(ledger, group.exceptions[0])
                except* ProviderError as group:
                    self.progress.jobs_failed += 1
                    error = group.exceptions[0]
                    ledger.append(Note(at=time.time(), kind="job_failed", message=f"job {job.job_id}: {error}"))

    def _interrupt(self, reason: str) -> None:
        """A signal: from this moment no attempt starts on any lane, and the ledger says when."""
        self.progress.stop(reason)
        for lane in self.lanes.values():
            lane.halt(reason)
        if self._ledger is not None:
            self._ledger.append(Note(at=time.time(), kind="interrupted", message=reason))

    def _lane_stopped(self, ledger: RecordSink, error: BaseException) -> None:
        """One note per stopped lane; its queued jobs drain without a call (the lane refuses them)."""
        provider = getattr(error, "provider", "")
        if provider not in self._noted_stops:
            self._noted_stops.add(provider)
            ledger.append(Note(at=time.time(), kind="lane_stopped", message=str(error)))


@contextlib.asynccontextmanager
async def no_display(_get: Callable[[], RunSnapshot]) -> AsyncIterator[None]:
    yield
