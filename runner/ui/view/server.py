"""Serving the viewer on 127.0.0.1: bind (a free port unless one is asked for), say the URL, open
it in a browser when this machine has one, and serve until cancelled.
"""

from __future__ import annotations

import asyncio
import os
import sys
import webbrowser
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from runner.errors import ConfigError
from runner.ui.view.app import build_app
from runner.ui.view.catalog import RunCatalog

HOST = "127.0.0.1"


@asynccontextmanager
async def open_viewer(catalog: RunCatalog, port: int = 0, log: Callable[[str], None] = print) -> AsyncIterator[str]:
    """Serve the viewer while the block runs; yields its URL.

    Raises:
        ConfigError: the port cannot be bound (taken, or not allowed).
    """
    runner = web.AppRunner(build_app(catalog, log), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"anytime view: cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
        bound = runner.addresses[0][1]
        yield f"http://{HOST}:{bound}/"
    finally:
        await runner.cleanup()


def has_browser() -> bool:
    """Whether a graphical browser can open here (a console-only Linux box has no display)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def open_in_browser(url: str) -> bool:
    """Ask the desktop to open ``url``; False when it cannot."""
    if not has_browser():
        return False
    try:
        return await asyncio.to_thread(webbrowser.open, url)
    except webbrowser.Error:
        return False


async def serve_forever(
    catalog: RunCatalog, port: int, browser: bool, say: Callable[[str], None], warn: Callable[[str], None]
) -> None:
    """Serve until cancelled (Ctrl-C): the URL goes to ``say``, each failed request's message to ``warn``."""
    async with open_viewer(catalog, port, log=lambda m: warn(f"viewer: {m}")) as url:
        shown = ", ".join(str(r) for r in catalog.runs) or f"the runs in {catalog.ledgers}"
        say(f"anytime view: {url}  ({shown}; Ctrl-C to stop)")
        if browser and not await open_in_browser(url):
            say("no browser on this machine: open the URL above in one")
        await asyncio.Event().wait()
