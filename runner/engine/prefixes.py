"""Warming a group's shared prompt prefix: its first trace goes alone until the provider has
started answering it, then the group's other traces follow and read the prefix from the cache.

The traces of a method with a preface (PDP, PDP(+), LEAP) repeat the same long preface. Sent all
at once (every worker starts its job when the group's synthesis is done), each would be processed
from scratch: a provider writes its cache only once a request has been processed. One trace's
time to first output buys every other trace of the group the cached rate on its preface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio


class PrefixWarmup:
    """Per group key: the first trace's turn, and the event the others wait for."""

    def __init__(self) -> None:
        self._ready: dict[str, anyio.Event] = {}

    @asynccontextmanager
    async def turn(self, key: str | None) -> AsyncIterator[Callable[[], None] | None]:
        """Enter when this trace may go; yields the callback the first trace calls at its first
        output (None for the others, and for traces that share nothing: ``key`` None)."""
        if key is None:
            yield None
            return
        ready = self._ready.get(key)
        if ready is not None:
            await ready.wait()
            yield None
            return
        ready = self._ready[key] = anyio.Event()
        try:
            yield ready.set
        finally:
            ready.set()  # failed before any output: the others go anyway
