"""How many workers a run gets when the user does not say (`--workers`, `run.workers`).

Batch mode (`run.mode = "batch"`) always runs in one process: it streams nothing.

One process carries about 1,000 to 1,500 realistic streams (one token a chunk, ~120 tokens/s) before
its CPU is the limit (`bench/README.md`, scale). So a run whose lanes may hold `STREAMS_PER_PROCESS`
streams at once or more (the sum of the lanes' ``max_concurrency``) gets one worker per core, and any
smaller run stays in one process: starting workers costs a second or two and buys nothing there.
"""

from __future__ import annotations

import os

from runner.config.manifest import LoadedManifest
from runner.errors import ConfigError

STREAMS_PER_PROCESS = 1000


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(loaded: LoadedManifest) -> int:
    """One per core when the lanes may hold `STREAMS_PER_PROCESS` streams at once, else 1."""
    streams = sum(loaded.manifest.providers[name].max_concurrency for name in loaded.lane_names())
    return cores() if streams >= STREAMS_PER_PROCESS else 1


def run_workers(loaded: LoadedManifest, flag: int | None) -> int:
    """The workers a run gets: ``--workers``, else ``run.workers``, else `default_workers`. Batch
    mode streams nothing: it runs in one process.

    Raises:
        ConfigError: ``--workers`` is below 1, or more than 1 in batch mode.
    """
    if flag is not None and flag < 1:
        raise ConfigError(f"--workers: must be a whole number of at least 1, got {flag}")
    asked = flag or loaded.manifest.run.workers
    if loaded.manifest.run.mode == "batch":
        if asked is not None and asked > 1:
            where = "--workers" if flag else "run.workers"
            raise ConfigError(f'{where}: batch mode (run.mode = "batch") runs in one process, got {asked} workers')
        return 1
    return asked or default_workers(loaded)


__all__ = ["STREAMS_PER_PROCESS", "cores", "default_workers", "run_workers"]
