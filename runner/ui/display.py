"""Choosing how a run shows its progress, and driving it while the sweep runs.

Every display follows `Display`: `anytime run` starts one before anything slow happens (so the
terminal shows a frame within a second of the command), tells it what it prepares, prints the
estimate through it, pauses it for a prompt, and hands it to the sweep, which attaches its
snapshots (`open_display`). The CLI stops it at the end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Literal, Protocol

from rich.console import Console, RenderableType

from runner.ui.dashboard import LiveDashboard, SnapshotSource
from runner.ui.progress_log import JsonLines, LineLog, Quiet

Mode = Literal["auto", "live", "plain", "json", "quiet"]


class Display(Protocol):
    """What `anytime run` drives: start once, phases and prints, attach the sweep, refresh, stop once."""

    interval: float

    def start(self) -> None:
        """Begin showing (the dashboard draws its first frame at once)."""

    def phase(self, text: str) -> None:
        """What is being prepared now ("estimating the cost")."""

    def print(self, renderable: RenderableType) -> None:
        """Show something once, above the live part."""

    def paused(self) -> contextlib.AbstractContextManager[None]:
        """Get out of the way of a prompt."""

    def attach(self, get_snapshot: SnapshotSource) -> None:
        """Show the run from now on; `refresh` takes a snapshot."""

    def refresh(self) -> None:
        """Take a snapshot and show it."""

    def stop(self) -> None:
        """Show the final state and release the terminal."""


def make_display(console: Console, title: str, mode: Mode = "auto") -> Display:
    """The dashboard on a terminal, plain lines otherwise (``auto``); or the one ``mode`` names."""
    if mode == "auto":
        mode = "plain" if not console.is_terminal or console.is_dumb_terminal else "live"
    if mode == "live":
        return LiveDashboard(console, title)
    if mode == "plain":
        return LineLog(console, title)
    if mode == "json":
        return JsonLines()
    return Quiet()


@contextlib.asynccontextmanager
async def open_display(display: Display, get_snapshot: SnapshotSource) -> AsyncIterator[Display]:
    """Show the sweep on ``display`` while the block runs, refreshing it from a task on this loop.

    Args:
        display: started by the caller, who also stops it (after the block).
        get_snapshot: called on the event loop each refresh; must be cheap and not block.
    """
    import anyio  # the engine's loop: here only once the sweep runs

    display.attach(get_snapshot)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_refresh_forever, display)
            try:
                yield display
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the refresh task never raises, so a group holds only the block's own error: hand that
        # back unwrapped, so callers' `except ConfigError` keep working under a display
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def _refresh_forever(display: Display) -> None:
    import anyio

    failed = False
    while True:  # the first frame with the run's own figures at once, then every interval
        try:
            display.refresh()
        except Exception as exc:  # a display bug must never stop a sweep that is spending money
            if not failed:
                failed = True
                warn(display, exc)
        await anyio.sleep(display.interval)


def warn(display: Display, exc: Exception) -> None:
    # stderr, not the console: the console may be the very thing that failed
    message = f"{type(exc).__name__}: {exc}"
    print(
        f"anytime: progress display ({type(display).__name__}) failed, run continues: {message}",
        file=sys.stderr,
    )


@contextlib.contextmanager
def shown(display: Display) -> Iterator[Display]:
    """Start ``display`` and stop it on the way out, whatever happens (a failing last frame only warns)."""
    display.start()
    try:
        yield display
    finally:
        try:
            display.stop()
        except Exception as exc:  # the command's own outcome (or error) matters more than a last frame
            warn(display, exc)
