"""`anytime run --ray auto|ADDRESS`: the run's coordinator and workers as Ray actors.

The only module that imports ray (an optional extra: `pip install 'anytime-runner[ray]'`), and
only inside its functions (`_ray`), so the product without Ray installed imports this module and refuses
``--ray`` with one clear error (`require_ray`).

- **The run actor** (one, pinned to this machine, so the run folder is where the user looks): it
  runs the whole sweep as one process would (simulator, ledger, transcripts, the coordinator's
  limiters and spend cap) with the same `Coordinator` as worker processes have, listening on TCP
  on its node's address. It is the ledger's single writer.
- **Worker actors** (``--workers`` of them, else one per CPU of the cluster; more than its CPUs
  share them), each running `runner.cluster.worker.run_worker` over TCP to the run actor, with the
  same frames and transport as worker processes (`runner.cluster.channel`), saying hello with the
  run's secret token. Ray places and supervises them; their frames do not go through Ray's actor
  calls, which cost ~90 times a frame's CPU (`bench/ray_calls.py`). A worker actor that dies (its
  node lost, its process killed) closes its connection and ends its call with an error, and the
  coordinator hands its jobs to the others.

Workers read the provider keys from their own environment, as a process does: set them on every
node (they are never sent through Ray). The built-in simulator listens on 127.0.0.1 of the run
actor's machine, so simulated runs need every worker there (a local cluster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import secrets
from collections.abc import Callable
from typing import Any, NamedTuple

import anyio
from anyio.abc import SocketAttribute

from runner.cluster.channel import serve_connection
from runner.cluster.coordinator import Coordinator
from runner.cluster.processes import count_left_undone
from runner.cluster.worker import run_connected
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


class RunActor:
    """The run: its sweep, its coordinator, its ledger (one actor, on the user's machine)."""

    def __init__(self) -> None:
        self.sweep: Sweep | None = None
        self.coordinator: Coordinator | None = None

    async def run(
        self, loaded: LoadedManifest, options: SweepOptions, workers: int, cpus_each: float = 1.0
    ) -> SweepOutcome:
        options = dataclasses.replace(options, driver=self._driver(workers, cpus_each), signals=False)
        self.sweep = Sweep(loaded, options)
        return await self.sweep.run(no_display)

    def _driver(self, workers: int, cpus_each: float) -> Driver:
        async def drive(sweep: Sweep, wiring: RunWiring) -> None:
            ray = _ray()
            self.coordinator = coordinator = Coordinator(sweep, wiring, workers)
            token = secrets.token_hex(16)
            host = ray.util.get_node_ip_address()
            listener = await anyio.create_tcp_listener(local_host=host, local_port=0)
            where = Address(host, listener.extra(SocketAttribute.local_port), token)
            worker_actor = ray.remote(num_cpus=cpus_each)(WorkerActor)
            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, functools.partial(serve_connection, coordinator, token=token))
                async with anyio.create_task_group() as running:
                    for worker in range(workers):
                        running.start_soon(
                            _watch_worker, coordinator, worker, worker_actor.remote(), where, sweep.loaded
                        )
                tg.cancel_scope.cancel()
            count_left_undone(sweep, wiring, coordinator)

        return drive

    async def snapshot(self) -> RunSnapshot | None:
        return self.sweep.snapshot() if self.sweep is not None else None

    async def interrupt(self, reason: str) -> None:
        """Stop the run as a signal would in one process: no new attempt, calls in flight finish."""
        if self.sweep is not None:
            self.sweep.interrupt(reason)


class Address(NamedTuple):
    """Where the run actor's coordinator listens, and the token its workers say hello with."""

    host: str
    port: int
    token: str


class WorkerActor:
    """One worker: `run_worker` over TCP to the run actor's coordinator."""

    async def run(self, where: Address, worker: int, loaded: LoadedManifest) -> None:
        stream = await anyio.connect_tcp(where.host, where.port)
        await run_connected(stream, worker, loaded, where.token)


async def _watch_worker(
    coordinator: Coordinator, worker: int, actor: ActorHandle, where: Address, loaded: LoadedManifest
) -> None:
    """Run one worker actor to its end; whether it said goodbye or died, the coordinator lets go of it
    (its connection's end tells it too: whichever comes first counts)."""
    ray = _ray()
    try:
        await actor.run.remote(where, worker, loaded)
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


__all__ = ["Address", "RunActor", "WorkerActor", "connect", "require_ray", "run_on_ray"]
