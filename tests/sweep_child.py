"""The body of a sweep subprocess the crash tests kill (`tests.reliability.crashes.run_sweep`).

The fork server imports this module once, before it forks any child: the modules a sweep imports
as it starts (0.3 s) and the o200k_base encoding (1.5 s to parse from its rank file) are then in
every child's memory from the start, so a resumed sweep starts in a fraction of a second, as it would on a machine
whose runs are minutes apart rather than a test's milliseconds.
"""

from __future__ import annotations

import importlib
import os
import sys

from runner.cli import main
from runner.config.kinds import SIMULATOR_ENCODING
from runner.tokens.encodings import get_encoding

# what a sweep imports as it starts (see the docstring)
PRELOAD = (
    "anyio._backends._asyncio",
    "anyio.to_thread",
    "runner.cli.run",
    "runner.engine.sweep",
    "runner.ledger.estimate",
    "runner.tasks.registry",
    "runner.ui.dashboard",
    "runner.ui.estimate",
)
for _name in PRELOAD:
    importlib.import_module(_name)
try:
    importlib.import_module("uvloop")  # `anytime run`'s loop when installed (the bench extra)
except ImportError:
    pass
get_encoding(SIMULATOR_ENCODING)


def sweep(manifest: str, log: str) -> None:
    """`anytime run` with its output in the log file (the parent only kills it)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.exit(main(["run", manifest, "--yes", "--plain", "--no-report"]))
