"""`anytime run --ray auto|ADDRESS`: the run's coordinator and workers as Ray actors.

The only module that imports ray (an optional extra: `pip install 'anytime-runner[ray]'`), and
only inside its functions (`_ray`), so the product without Ray installed imports this module and refuses
``--ray`` with one clear error (`require_ray`).

- **The run actor** (one, pinned to this machine, so the run folder is where the user looks): it
  runs the whole sweep as one process would (simulator, ledger, transcripts, the coordinator's
  limiters and spend cap) with the same `Coordinator` as worker processes have, and answers the
  workers' frames (`ask`, `tell`). It is the ledger's single writer.
- **Worker actors** (``--workers`` of them, else one per CPU of the cluster; more than its CPUs
  share them), each running
  `runner.cluster.worker.run_worker` over a `RayChannel`: a tell is an actor call not waited for,
  an ask one that is. A worker actor that dies (its node lost, its process killed) ends its call
  with an error, and the coordinator hands its jobs to the others.

Workers read the provider keys from their own environment, as a process does: set them on every
node (they are never sent through Ray). The built-in simulator listens on 127.0.0.1 of the run
actor's machine, so simulated runs need every worker there (a local cluster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import anyio

from runner.cluster.coordinator import Coordinator
from runner.cluster.messages import Done, Frame, Reply, Request, decode, encode
from runner.cluster.processes import count_left_undone
from runner.cluster.worker import run_worker
from runner.config.manifest import LoadedManifest
from runner.engine.snapshots import RunSnapshot
from runner.engine.sweep import Driver, RunWiring, Sweep, SweepOptions, SweepOutcome, no_display
from runner.errors import ConfigError

ActorHandle = Any  # ray.actor.ActorHandle (ray's types are not needed, nor always installed)


def _ray() -> Any:
    """The ray module, imported on first use (typed loosely: Ray is an optional extra)."""
    return importlib.import_module("ray")


def require_ray() -> None:
    """Raise ConfigError (exit 2, nothing spent) when Ray cannot be imported."""
    try:
        _ray()
    except ImportError:
        message = "--ray: Ray is not installed here; install it with: pip install 'anytime-runner[ray]'"
        raise ConfigError(message) from None


class RayChannel:
    """A worker actor's `Channel`: frames as calls to the run actor."""

    def __init__(self, coordinator: ActorHandle, worker: int) -> None:
        self._coordinator = coordinator
        self._worker = worker

    def tell(self, body: Request) -> None:
        self._coordinator.tell.remote(self._worker, encode(Frame(0, body)))

    async def ask(self, body: Request, orphan: Callable[[Reply], None] | None = None) -> Reply:
        ref = self._coordinator.ask.remote(self._worker, encode(Frame(1, body)))
        try:
            data = await ref
        except BaseException:
            if orphan is not None:  # the answer still comes: whatever it grants goes back
                ref.future().add_done_callback(lambda done: _hand_to(orphan, done.result()))
            raise
        reply = decode(data).body
        assert not isinstance(reply, Request)
        return reply


def _hand_to(orphan: Callable[[Reply], None], data: bytes) -> None:
    reply = decode(data).body
    if not isinstance(reply, Request):
        orphan(reply)


class RunActor:
    """The run: its sweep, its coordinator, its ledger (one actor, on the user's machine)."""

    def __init__(self) -> None:
        self.sweep: Sweep | None = None
        self.coordinator: Coordinator | None = None

    async def run(
        self, loaded: LoadedManifest, options: SweepOptions, workers: int, cpus_each: float = 1.0
    ) -> SweepOutcome:
        ray = _ray()
        me = ray.get_runtime_context().current_actor
        options = dataclasses.replace(options, driver=self._driver(me, workers, cpus_each), signals=False)
        self.sweep = Sweep(loaded, options)
        return await self.sweep.run(no_display)

    def _driver(self, me: ActorHandle, workers: int, cpus_each: float) -> Driver:
        async def drive(sweep: Sweep, wiring: RunWiring) -> None:
            ray = _ray()
            self.coordinator = coordinator = Coordinator(sweep, wiring, workers)
            worker_actor = ray.remote(num_cpus=cpus_each)(WorkerActor)
            async with anyio.create_task_group() as tg:
                for worker in range(workers):
                    tg.start_soon(_watch_worker, coordinator, worker, worker_actor.remote(), me, sweep.loaded)
            count_left_undone(sweep, wiring, coordinator)

        return drive

    async def ask(self, worker: int, data: bytes) -> bytes:
        assert self.coordinator is not None
        frame = decode(data)
        assert isinstance(frame.body, Request)
        pending = self.coordinator.receive(worker, frame.body)
        if pending is None:
            reply: Reply = Done()
        elif isinstance(pending, Reply):
            reply = pending
        else:
            reply = await pending
        return encode(Frame(frame.id, reply))

    async def tell(self, worker: int, data: bytes) -> None:
        if self.coordinator is not None:
            body = decode(data).body
            assert isinstance(body, Request)
            self.coordinator.receive(worker, body)

    async def snapshot(self) -> RunSnapshot | None:
        return self.sweep.snapshot() if self.sweep is not None else None

    async def interrupt(self, reason: str) -> None:
        """Stop the run as a signal would in one process: no new attempt, calls in flight finish."""
        if self.sweep is not None:
            self.sweep.interrupt(reason)


class WorkerActor:
    """One worker: `run_worker` over a `RayChannel`."""

    async def run(self, coordinator: ActorHandle, worker: int, loaded: LoadedManifest) -> None:
        await run_worker(RayChannel(coordinator, worker), worker, loaded)


async def _watch_worker(
    coordinator: Coordinator, worker: int, actor: ActorHandle, me: ActorHandle, loaded: LoadedManifest
) -> None:
    """Run one worker actor to its end; whether it said goodbye or died, the coordinator lets go of it."""
    ray = _ray()
    try:
        await actor.run.remote(me, worker, loaded)
    except ray.exceptions.RayError:
        pass  # the coordinator tells a lost worker from one that said goodbye
    finally:
        coordinator.worker_gone(worker)
        ray.kill(actor)


def connect(address: str) -> None:
    """Join the cluster at ``address``; ``auto``: the running cluster, else a local one."""
    ray = _ray()
    if ray.is_initialized():
        return
    if address != "auto":
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    try:
        ray.init(address="auto", include_dashboard=False, log_to_driver=False)
    except ConnectionError:  # no cluster running: start one on this machine
        ray.init(include_dashboard=False, log_to_driver=False)


def run_on_ray(
    address: str,
    loaded: LoadedManifest,
    options: SweepOptions,
    workers: int | None,
    watch: Callable[[RunSnapshot], None] = lambda _snapshot: None,
    every_s: float = 1.0,
) -> SweepOutcome:
    """The run, with its coordinator and ``workers`` workers (default: the cluster's CPUs) as actors;
    ``watch`` gets the run's snapshot every ``every_s`` seconds (a display shows it).

    A first Ctrl-C stops it as in one process (calls in flight finish), a second one kills it.
    """
    ray = _ray()
    strategies = importlib.import_module("ray.util.scheduling_strategies")
    connect(address)
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    count = workers or max(1, int(cpus))
    # more workers than the cluster's CPUs share them, rather than wait for CPUs that never come
    cpus_each = min(1.0, cpus / count)
    here = strategies.NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(num_cpus=0, max_concurrency=100_000)(RunActor).options(scheduling_strategy=here).remote()
    result = actor.run.remote(loaded, dataclasses.replace(options, driver=None), count, cpus_each)
    try:
        try:
            _watch_until_done(ray, actor, result, watch, every_s)
        except KeyboardInterrupt:
            actor.interrupt.remote("interrupted (SIGINT)")
        outcome: SweepOutcome = ray.get(result)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    return outcome


def _watch_until_done(
    ray: Any, actor: ActorHandle, result: Any, watch: Callable[[RunSnapshot], None], every_s: float
) -> None:
    while not ray.wait([result], timeout=every_s)[0]:
        snapshot = ray.get(actor.snapshot.remote())
        if snapshot is not None:
            watch(snapshot)


__all__ = ["RayChannel", "RunActor", "WorkerActor", "connect", "require_ray", "run_on_ray"]
