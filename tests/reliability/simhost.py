"""Simulators, one per config, in a child process of their own; their counters over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec

from anytime_sim import SimConfig, open_simulator
from anytime_sim.stats import SimStats, UsageReport


def _serve(configs: list[SimConfig], datasets: list[tuple[str, str]], conn: Connection) -> None:
    """The child's body: serve every config on its own port until the parent says stop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve_async(configs, datasets, conn))


async def _serve_async(configs: list[SimConfig], datasets: list[tuple[str, str]], conn: Connection) -> None:
    files = [(kind, Path(path)) for kind, path in datasets]
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(open_simulator(config, files)) for config in configs]
        conn.send([sim.base_url for sim in sims])
        with contextlib.suppress(EOFError):
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)


class SimHost:
    """Simulators, one per config, in a child process; their counters over HTTP."""

    def __init__(self, configs: list[SimConfig], datasets: list[tuple[str, Path]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        files = [(kind, str(path)) for kind, path in datasets]
        self.process = context.Process(target=_serve, args=(configs, files, child), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 120
        while not self._conn.poll(0.2):
            if not self.process.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the simulators did not start (exit code {self.process.exitcode})")
        self.urls: list[str] = self._conn.recv()

    def _get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=30) as response:
            body: bytes = response.read()
            return body

    def stats(self, i: int) -> SimStats:
        """Simulator ``i``'s counters once no call is in flight (every handler has counted)."""
        deadline = time.monotonic() + 60
        while True:
            stats = msgspec.json.decode(self._get(self.urls[i] + "/sim/stats"), type=SimStats)
            if stats.in_flight == 0 or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)  # waiting for the server's handlers to end, not timing anything

    def usage(self, i: int) -> list[UsageReport]:
        return msgspec.json.decode(self._get(self.urls[i] + "/sim/usage"), type=list[UsageReport])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def __enter__(self) -> SimHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
