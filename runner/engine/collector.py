"""The cyclic garbage collector, set for a process that holds thousands of streams.

Opening a stream allocates ~130 objects the collector tracks (the connection, the task, its cancel
scopes), while streaming makes next to no cyclic garbage: the events decoded per chunk are not
tracked at all, and 300 finished streams leave 45 unreachable objects between them. CPython's
default thresholds (700, 10, 10) still run a full collection every time the heap grows by a
quarter, so opening 3,000 streams cost ~1 s of CPU in collections, a quarter of the CPU their
set-up takes (`bench/README.md`, section scale). While a run streams, `tuned_collector` freezes
what start-up built (modules, encodings, the manifest: never garbage) and collects the young
generation after 50,000 allocations instead of 700; on leaving, both are put back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

STREAMING_THRESHOLDS = (50_000, 20, 20)


@contextmanager
def tuned_collector() -> Iterator[None]:
    """Run the block with start-up's objects frozen and the collector's thresholds raised."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*STREAMING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
