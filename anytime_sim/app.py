"""The simulator on loopback: one aiohttp app, a route per dialect, started by `open_simulator`.

This is the only module that knows every dialect: the dialects import the server's state, never
the other way round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from anytime_sim import anthropic, batch_anthropic, batch_gemini, batch_openai, openai_chat, openai_responses
from anytime_sim.call import client_gone
from anytime_sim.knowledge import open_index
from anytime_sim.models import SimConfig
from anytime_sim.server import SIM_KEY, Simulator


def build_app(sim: Simulator) -> web.Application:
    """The routes: every dialect on one port, by path."""
    app = web.Application(client_max_size=sim.config.max_body_bytes, middlewares=[client_gone])
    app[SIM_KEY] = sim
    app.router.add_post("/v1/chat/completions", openai_chat.handle)
    app.router.add_post("/v1/responses", openai_responses.handle)
    app.router.add_post("/v1/messages", anthropic.handle)
    app.router.add_post("/v1beta/models/{target}", batch_gemini.model_route)  # direct requests and batches
    batch_openai.add_routes(app)
    batch_anthropic.add_routes(app)
    batch_gemini.add_routes(app)
    app.router.add_get("/v1/models", sim.list_models)
    app.router.add_get("/sim/stats", sim.stats_handler)
    app.router.add_get("/sim/usage", sim.usage_handler)
    return app


@asynccontextmanager
async def open_simulator(
    config: SimConfig,
    datasets: Sequence[tuple[str, Path]],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Simulator]:
    """Start the simulator on ``host:port`` (0: any free port) and stop it on exit.

    Args:
        config: limits, speed, faults and models.
        datasets: (kind, path) pairs; the simulator knows gold answers only from these files.
        host: the address to bind (loopback by default).
        port: the port (0 picks a free one; see ``Simulator.base_url``).
        clock: the rate limiter's clock (tests may pass a fake one).
    """
    index = await asyncio.to_thread(open_index, datasets)
    sim = Simulator(config, index, clock)
    # handler_cancellation: a client that disconnects cancels its handler, which stops generation
    runner = web.AppRunner(build_app(sim), handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = runner.addresses  # the one site's sockets, as getsockname() gives them
    bound_port = addresses[0][1] if addresses else port
    sim.base_url = f"http://{host}:{bound_port}"
    try:
        yield sim
    finally:
        await sim.batches.aclose()
        await runner.cleanup()
