"""`anytime run --workers N`: N worker processes on this machine, the coordinator in this one.

The coordinator listens on a Unix socket in a private temporary folder; each worker is forked from
a fork server (`forkserver`: nothing of this process's event loop, threads or sockets is inherited;
the engine and the default encoding are loaded once, by `runner.cluster.forkserver`) and connects,
runs its share of the jobs (`runner.cluster.worker`) and leaves. Ctrl-C belongs to this
process: the workers ignore SIGINT, and the sweep's stop reaches them through the coordinator (no
new jobs, no new leases), so the grace period works as in one process. A worker killed by anything
else is given up for lost when its socket closes (`Coordinator.worker_gone`) and the others take
over its jobs. Jobs left when every worker is gone count as failed: rerunning resumes them.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess

import anyio

from runner.cluster.channel import CoordinatorLost, serve_connection
from runner.cluster.coordinator import Coordinator
from runner.cluster.worker import run_connected
from runner.config.manifest import LoadedManifest
from runner.engine.collector import tuned_collector
from runner.engine.sweep import Driver, RunWiring, Sweep
from runner.ledger.records import Note

POLL_S = 0.05  # how often the driver looks whether its worker processes are still there


def loop_options() -> dict[str, bool]:
    """uvloop when it is installed (as `anytime run` itself runs)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def worker_process(address: str, worker: int, loaded: LoadedManifest) -> None:
    """The body of one worker process. When `anytime run` is gone (killed), it stops with one line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    try:
        with tuned_collector():
            anyio.run(_connected_worker, address, worker, loaded, backend="asyncio", backend_options=loop_options())
    except* CoordinatorLost:
        print(f"anytime worker {worker}: the run's coordinator is gone; stopping", file=sys.stderr)
        sys.exit(1)


async def _connected_worker(address: str, worker: int, loaded: LoadedManifest) -> None:
    await run_connected(await anyio.connect_unix(address), worker, loaded)


def process_driver(workers: int) -> Driver:
    """A sweep driver that runs the jobs in ``workers`` processes of this machine."""

    async def drive(sweep: Sweep, wiring: RunWiring) -> None:
        coordinator = Coordinator(sweep, wiring, workers)
        with tempfile.TemporaryDirectory(prefix="anytime-workers-") as folder:
            address = os.path.join(folder, "coordinator.sock")
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["runner.cluster.forkserver"])
            processes = [
                context.Process(
                    target=worker_process, args=(address, i, sweep.loaded), name=f"anytime-worker-{i}", daemon=True
                )
                for i in range(workers)
            ]
            listener = await anyio.create_unix_listener(address)
            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, functools.partial(serve_connection, coordinator))
                try:
                    for process in processes:
                        process.start()
                    await _until_gone(processes, coordinator)
                finally:
                    _kill(processes)
                tg.cancel_scope.cancel()
        count_left_undone(sweep, wiring, coordinator)

    return drive


async def _until_gone(processes: Sequence[BaseProcess], coordinator: Coordinator) -> None:
    """Wait until every worker process has exited and the coordinator has let go of each."""
    while any(p.is_alive() for p in processes) or coordinator.connected:  # noqa: ASYNC110 (an exit has no event)
        await anyio.sleep(POLL_S)


def _kill(processes: Sequence[BaseProcess]) -> None:
    """The run is over or cancelled: no worker outlives it."""
    for process in processes:
        if process.is_alive():
            process.kill()
    deadline = time.monotonic() + 5.0
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))


def count_left_undone(sweep: Sweep, wiring: RunWiring, coordinator: Coordinator) -> None:
    """Jobs no worker was left to run count as failed (a rerun resumes them), with a note why."""
    left = coordinator.left_undone()
    if not left:
        return
    for lane, job in left:
        sweep.progress.job_finished(lane, job.model, job.job_id, failed=True)
    message = f"every worker is gone ({len(coordinator.lost)} lost): {len(left)} job(s) not run; rerun to resume them"
    wiring.ledger.append(Note(at=time.time(), kind="workers_lost", message=message))


__all__ = ["count_left_undone", "loop_options", "process_driver", "worker_process"]
