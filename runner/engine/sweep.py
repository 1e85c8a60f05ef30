"""Run a whole sweep: prepare everything that can fail for free, then drive the lanes.

Flow: resolve prices, encodings and keys (errors here spend nothing) → open the run folder and
its ledger (resume: completed jobs are skipped) → start the built-in simulator if a provider asks
for it → one feeder per lane pulls jobs lazily from the plan into a small memory stream, and the
lane's workers run them → SIGINT/SIGTERM stops feeding, lets in-flight jobs finish for a grace
period, then cancels; a second signal cancels at once. Every attempt is ledgered either way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runner import __version__
from runner.config.fidelity import default_fidelity
from runner.config.manifest import LoadedManifest
from runner.config.plan import Job, check_plan, count_jobs, expand_jobs
from runner.engine.lane import Lane, RecordSink
from runner.engine.limits import LaneLimiter
from runner.engine.meter import RateMeter
from runner.engine.pipeline import ModelContext, Pipeline
from runner.engine.retry import RetryPolicy
from runner.engine.snapshots import LaneSnapshot, RunSnapshot
from runner.engine.spend import SpendGuard
from runner.errors import ConfigError, FatalProviderError, ManifestError, ProviderError, SpendCapReached
from runner.ledger.prices import PriceTable
from runner.ledger.reader import LedgerState, load_state
from runner.ledger.records import JobDone, Note, RunHeader
from runner.ledger.writer import open_ledger
from runner.providers.registry import default_base_url, make_adapter
from runner.tokens.encodings import resolve_encoding

SIM_SCHEME = "sim://"


@dataclass
class SweepOptions:
    grace_s: float = 30.0
    new_run: bool = False
    plain: bool | None = None
    quiet: bool = False
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


def run_dir_for(loaded: LoadedManifest, new_run: bool = False) -> Path:
    base = loaded.resolve(loaded.manifest.run.ledger_dir) / loaded.manifest.run.name
    if not new_run:
        return base
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return base.with_name(f"{base.name}-{stamp}")


def uses_simulator(loaded: LoadedManifest) -> bool:
    """Whether any selected provider needs the built-in simulator started in this process."""
    return any(uses_sim_provider(loaded, name) for name in loaded.manifest.providers)


def api_key_for(loaded: LoadedManifest, name: str) -> str | None:
    provider = loaded.manifest.providers[name]
    if provider.kind == "sim" or (provider.base_url or "").startswith(SIM_SCHEME):
        return f"sim-key-{name}"  # the simulator limits per key; this one is not secret
    if provider.api_key_env is None:
        return None
    value = os.environ.get(provider.api_key_env)
    if not value:
        raise ManifestError(
            loaded.path.name,
            f"providers.{name}.api_key_env",
            f"environment variable {provider.api_key_env} is not set (export it with your {name} API key)",
        )
    return value


def build_model_contexts_offline(loaded: LoadedManifest) -> tuple[dict[str, tuple], PriceTable, list[str]]:
    """Prices, encodings and fidelities for every selected model; raises before any spend."""
    from anytime_sim.models import BUILTIN_MODELS

    prices = PriceTable.load()
    warnings: list[str] = []
    resolved: dict[str, tuple] = {}
    for key in loaded.selected("models"):
        model = loaded.manifest.models[key]
        provider = loaded.manifest.providers[model.provider]
        price = prices.price_for(key, model, provider.kind)
        encoding = resolve_encoding(model.encoding, model.model, loaded.manifest.run.on_missing_encoding)
        if encoding.warning:
            warnings.append(encoding.warning)
        sim_model = BUILTIN_MODELS.get(model.model)  # only simulated models have these ids
        if sim_model is not None:
            # the simulator tokenizes with o200k_base: counting with it is exact, not an approximation
            encoding.approximate = encoding.name != "o200k_base"
        fidelity = model.fidelity or default_fidelity(
            model.model, sim_model.reasoning if sim_model else None, sim_model.profile if sim_model else None
        )
        resolved[key] = (model, price, encoding, fidelity)
    return resolved, prices, warnings


def sim_path(kind: str, base_url: str | None) -> str:
    """The API root on the simulator: ``sim:///v1`` names it; else the protocol's usual root."""
    path = (base_url or SIM_SCHEME)[len(SIM_SCHEME) :]
    if path:
        return path if path.startswith("/") else "/" + path
    return "/v1beta" if kind == "gemini" else "/v1"


def sim_options(kind: str) -> dict[str, object] | None:
    """Adapter options for a lane served by the simulator: protocols with no seed field send it
    in a header the simulator reads, so samples of one problem differ as they do on real hosts."""
    return {"seed_header": "x-sim-seed"} if kind in ("anthropic", "openai_responses", "gemini") else None


def uses_sim_provider(loaded: LoadedManifest, name: str) -> bool:
    """A provider served by the in-process simulator: kind "sim" without a URL, or a sim:// URL.

    ``kind = "sim"`` with an ``http://`` URL talks to a simulator already running elsewhere
    (``anytime sim --port N``), for example one that outlives a crashed run.
    """
    p = loaded.manifest.providers[name]
    return (p.kind == "sim" and not p.base_url) or (p.base_url or "").startswith(SIM_SCHEME)


def check_manifest_change(loaded: LoadedManifest, state: LedgerState, run_dir: Path) -> None:
    """Refuse to mix a changed manifest into a ledger whose finished jobs it would orphan."""
    if not state.headers or state.headers[-1].manifest_sha256 == loaded.sha256 or not state.completed_jobs:
        return
    planned = {job.job_id for job in expand_jobs(loaded)}
    orphaned = [j for j in state.completed_jobs if j not in planned]
    if orphaned:
        raise ConfigError(
            f"{loaded.path.name} changed since {run_dir} was started: {len(orphaned)} finished job(s) in its "
            "ledger are not part of the manifest any more (models, problems, budgets, methods or parameters "
            "changed). Restore the manifest to resume, or pass --new-run to start a separate run folder."
        )


class Sweep:
    """One process's run of a manifest."""

    def __init__(self, loaded: LoadedManifest, options: SweepOptions) -> None:
        self.loaded = loaded
        self.options = options
        self.run_dir = run_dir_for(loaded, options.new_run)
        self.contexts, self.prices, self.warnings = build_model_contexts_offline(loaded)
        check_plan(loaded)
        self.keys = {name: api_key_for(loaded, name) for name in self._lane_names()}
        self.jobs_total = count_jobs(loaded)
        self.jobs_done = 0
        self.jobs_skipped = 0
        self.jobs_failed = 0
        self.stopping: str | None = None
        self.lanes: dict[str, Lane] = {}
        self.tokens_out = RateMeter(window_s=10.0, buckets=20)
        self.started = time.time()
        self.state = load_state(self.run_dir) if (self.run_dir / "ledger.jsonl").exists() else None
        if self.state is not None:
            check_manifest_change(loaded, self.state, self.run_dir)
        self.spend = SpendGuard(
            loaded.manifest.run.max_usd,
            {name: p.max_usd for name, p in loaded.manifest.providers.items()},
            spent=self.state.total_usd if self.state else 0.0,
            spent_by_provider=dict(self.state.usd_by_provider) if self.state else None,
        )
        self.usd_at_start = self.spend.spent

    def _lane_names(self) -> list[str]:
        return sorted({self.loaded.manifest.models[m].provider for m in self.loaded.selected("models")})

    def snapshot(self) -> RunSnapshot:
        now = time.time()
        lanes = []
        for name, lane in self.lanes.items():
            limiter = lane.limiter.stats()
            lanes.append(
                LaneSnapshot(
                    name=name,
                    in_flight=lane.counters.in_flight,
                    waiting=limiter.waiting,
                    concurrency_limit=limiter.concurrency_limit,
                    rpm_limit=limiter.rpm_limit,
                    tpm_limit=limiter.tpm_limit,
                    requests_last_min=limiter.requests_last_min,
                    tokens_last_min=limiter.tokens_last_min,
                    paused_for_s=limiter.paused_for_s,
                    n429=lane.counters.n429,
                    retries=lane.counters.retries,
                    errors=lane.counters.errors,
                )
            )
        recent = tuple(msg for lane in self.lanes.values() for msg in lane.counters.recent)[-5:]
        return RunSnapshot(
            run_id=self.run_dir.name,
            started_at=self.started,
            now=now,
            jobs_total=self.jobs_total,
            jobs_done=self.jobs_done,
            jobs_skipped=self.jobs_skipped,
            calls_done=sum(lane.counters.attempts - lane.counters.in_flight for lane in self.lanes.values()),
            calls_in_flight=sum(lane.counters.in_flight for lane in self.lanes.values()),
            tokens_in=sum(lane.counters.input_tokens for lane in self.lanes.values()),
            tokens_out=sum(lane.counters.output_tokens for lane in self.lanes.values()),
            tokens_per_s=self.tokens_out.rate(now),
            usd_spent=self.spend.spent,
            usd_cap=self.loaded.manifest.run.max_usd,
            usd_estimate=self.options.usd_estimate,
            lanes=tuple(lanes),
            stopping=self.stopping,
            recent=recent,
        )

    async def run(
        self, display: Callable[[Callable[[], RunSnapshot]], contextlib.AbstractAsyncContextManager[None]]
    ) -> SweepOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            sim_url = await self._start_simulator(stack)
            ledger = await stack.enter_async_context(open_ledger(self.run_dir))
            ledger.append(self._header())
            for warning in self.warnings:
                ledger.append(Note(at=time.time(), kind="encoding_fallback", message=warning))
            await self._open_lanes(stack, sim_url, ledger)
            pipeline = Pipeline(
                self.loaded,
                self._model_contexts(),
                ledger,
                dict(self.state.synthesis) if self.state else {},
                on_job_done=self._job_done,
            )
            await stack.enter_async_context(display(self.snapshot))
            await self._drive(pipeline, ledger)
            if self.stopping:
                ledger.append(Note(at=time.time(), kind="stopped", message=self.stopping))
        return SweepOutcome(
            run_dir=self.run_dir,
            jobs_total=self.jobs_total,
            jobs_run=self.jobs_done - self.jobs_skipped,
            jobs_skipped=self.jobs_skipped,
            jobs_failed=self.jobs_failed,
            usd_this_process=self.spend.spent - self.usd_at_start,
            usd_total=self.spend.spent,
            stopped=self.stopping,
            warnings=self.warnings,
        )

    def _header(self) -> RunHeader:
        return RunHeader(
            run_id=self.run_dir.name,
            tool_version=__version__,
            started_at=time.time(),
            manifest_path=str(self.loaded.path),
            manifest_sha256=self.loaded.sha256,
            manifest=msgspec.to_builtins(self.loaded.manifest),
            prices={key: self.prices.describe(price) for key, (_m, price, _e, _f) in self.contexts.items()},
            resumed=self.state is not None,
        )

    async def _start_simulator(self, stack: contextlib.AsyncExitStack) -> str | None:
        if not uses_simulator(self.loaded):
            return None
        from anytime_sim import SimConfig, open_simulator

        m = self.loaded.manifest
        config = SimConfig.from_table(msgspec.to_builtins(m.simulator))
        datasets = [
            (m.datasets[d].kind, self.loaded.resolve(m.datasets[d].path)) for d in self.loaded.selected("datasets")
        ]
        sim = await stack.enter_async_context(open_simulator(config, datasets))
        return sim.base_url

    async def _open_lanes(self, stack: contextlib.AsyncExitStack, sim_url: str | None, ledger: RecordSink) -> None:
        for name in self._lane_names():
            provider = self.loaded.manifest.providers[name]
            base_url = provider.base_url or default_base_url(provider.kind)
            if uses_sim_provider(self.loaded, name):
                assert sim_url is not None
                base_url = sim_url + sim_path(provider.kind, provider.base_url)
            connector = aiohttp.TCPConnector(limit=provider.max_concurrency, limit_per_host=provider.max_concurrency)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=provider.timeouts.connect),
                )
            )
            self.lanes[name] = Lane(
                name=name,
                adapter=make_adapter(
                    name,
                    provider,
                    base_url,
                    self.keys[name],
                    options=sim_options(provider.kind) if uses_sim_provider(self.loaded, name) else None,
                ),
                limiter=LaneLimiter(rpm=provider.rpm, tpm=provider.tpm, max_concurrency=provider.max_concurrency),
                policy=RetryPolicy(max_attempts=provider.max_attempts),
                session=session,
                ledger=ledger,
                spend=self.spend,
                first_token_timeout=provider.timeouts.first_token,
                idle_timeout=provider.timeouts.idle,
                total_timeout=provider.timeouts.total,
                on_tokens=lambda _i, o: self.tokens_out.add(o, time.time()),
            )

    def _model_contexts(self) -> dict[str, ModelContext]:
        return {
            key: ModelContext(
                key=key,
                config=model,
                lane=self.lanes[model.provider],
                price=price,
                encoding=encoding.encoding,
                approximate=encoding.approximate,
                fidelity=fidelity,
            )
            for key, (model, price, encoding, fidelity) in self.contexts.items()
        }

    def _job_done(self, _done: JobDone) -> None:
        self.jobs_done += 1

    async def _drive(self, pipeline: Pipeline, ledger: RecordSink) -> None:
        completed = self.state.completed_jobs if self.state else set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg.cancel_scope)
            async with anyio.create_task_group() as work:
                for name in self.lanes:
                    models = [
                        m for m in self.loaded.selected("models") if self.loaded.manifest.models[m].provider == name
                    ]
                    workers = self.loaded.manifest.providers[name].max_concurrency
                    # a small buffer keeps the plan lazy: jobs are expanded only as workers free up
                    send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=min(workers, 64))
                    work.start_soon(self._feed, models, completed, send)
                    for _ in range(workers):
                        work.start_soon(self._work, pipeline, ledger, receive.clone())
                    receive.close()
            tg.cancel_scope.cancel()  # all work done: stop the signal watcher

    async def _feed(self, models: list[str], completed: set[str], send: MemoryObjectSendStream[Job]) -> None:
        async with send:
            for job in expand_jobs(self.loaded, models):
                if job.job_id in completed:
                    self.jobs_done += 1
                    self.jobs_skipped += 1
                    continue
                if self.stopping:
                    return
                await send.send(job)

    async def _work(self, pipeline: Pipeline, ledger: RecordSink, receive: MemoryObjectReceiveStream[Job]) -> None:
        async with receive:
            async for job in receive:
                if self.stopping:
                    continue  # drain without starting anything new, so the feeder sees the stop
                try:
                    await pipeline.run_job(job)
                except* SpendCapReached as group:
                    self.stopping = f"spend cap reached: {group.exceptions[0]}"
                except* ProviderError as group:
                    self.jobs_failed += 1
                    error = group.exceptions[0]
                    ledger.append(Note(at=time.time(), kind="job_failed", message=f"job {job.job_id}: {error}"))
                    if isinstance(error, FatalProviderError) and error.status in (401, 403, 404):
                        self.stopping = f"stopped: {error}"

    async def _watch_signals(self, everything: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.stopping and self.stopping.startswith("interrupted"):
                    self.stopping = f"interrupted ({name} twice): cancelled in-flight calls"
                    everything.cancel()
                    return
                self.stopping = f"interrupted ({name}): finishing in-flight calls for up to {self.options.grace_s:.0f}s"
                everything.deadline = min(everything.deadline, anyio.current_time() + self.options.grace_s)


@contextlib.asynccontextmanager
async def no_display(_get: Callable[[], RunSnapshot]) -> AsyncIterator[None]:
    yield
