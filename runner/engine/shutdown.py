"""Ctrl-C and SIGTERM: the first stops new work and gives calls in flight a grace period, the
second cancels at once. Either way every attempt is still ledgered (the lane writes its record in
a `finally`)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import anyio


async def watch_signals(
    everything: anyio.CancelScope, grace_s: float, stopping: Callable[[], str | None], stop: Callable[[str], None]
) -> None:
    """Turn SIGINT / SIGTERM into a stop reason and a deadline on ``everything``.

    Args:
        everything: the scope of all the run's work.
        grace_s: how long calls in flight may go on after the first signal.
        stopping: the run's current stop reason (None: running).
        stop: sets the run's stop reason.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            reason = stopping()
            if reason and reason.startswith("interrupted"):
                stop(f"interrupted ({name} twice): cancelled in-flight calls")
                everything.cancel()
                return
            stop(f"interrupted ({name}): finishing in-flight calls for up to {grace_s:.0f}s")
            everything.deadline = min(everything.deadline, anyio.current_time() + grace_s)
