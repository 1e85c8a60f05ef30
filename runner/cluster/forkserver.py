"""What the fork server of worker processes loads once, before it forks any worker.

`runner.cluster.processes` starts workers from a fork server whose preload is this module: the
engine's modules, the event loop and the default encoding's ranks (o200k_base, about a second to
parse) are in every worker's memory from its first instruction, shared copy-on-write, instead of
each worker importing and parsing them again. The fork server itself runs no event loop and holds
no thread or socket, so forking it is safe where forking `anytime run` would not be.
"""

from __future__ import annotations

import contextlib

import runner.cluster.worker  # noqa: F401  (the modules a worker runs)
from runner.tokens.encodings import DEFAULT_ENCODING, get_encoding

with contextlib.suppress(ImportError):
    import uvloop  # noqa: F401  (the loop `anytime run` and its workers run on when installed)

get_encoding(DEFAULT_ENCODING)
