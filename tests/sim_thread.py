"""The simulator on loopback in a thread of its own, for tests that call the CLI's `main` in-process.

`anytime run` starts its own event loop, so a test that runs it cannot share a loop with the
simulator: the simulator gets a thread and a loop of its own here, and a real socket between them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from anytime_sim import SimConfig, Simulator, open_simulator


@contextmanager
def simulator_thread(config: SimConfig, datasets: Sequence[tuple[str, Path]] = ()) -> Iterator[Simulator]:
    """Serve the simulator from a background thread until the block ends; yields it (``base_url`` set)."""
    ready = threading.Event()
    started: list[Simulator] = []
    failed: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with open_simulator(config, list(datasets)) as sim:
                started.append(sim)
                ready.set()
                await stop.wait()
        except BaseException as exc:  # handed to the test's thread below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="sim", daemon=True)
    thread.start()
    ready.wait(30)
    try:
        if failed:
            raise failed[0]
        yield started[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
