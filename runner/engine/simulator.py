"""Starting the built-in simulator for a run, and pointing lanes at it.

The only engine module that imports `anytime_sim`: the simulator is a separate server, started
here in the run's own process when a provider asks for it (``kind = "sim"`` or a ``sim://`` URL).
"""

from __future__ import annotations

import contextlib

import msgspec

from runner.config.kinds import SIM_SCHEME
from runner.config.manifest import LoadedManifest


async def start_simulator(loaded: LoadedManifest, stack: contextlib.AsyncExitStack) -> str | None:
    """Start the simulator on loopback if the run needs it; its base URL, else None.

    It knows gold answers only from the dataset files the manifest selects.
    """
    if not loaded.uses_simulator():
        return None
    from anytime_sim import SimConfig, open_simulator

    m = loaded.manifest
    config = SimConfig.from_table(msgspec.to_builtins(m.simulator))
    datasets = [(m.datasets[d].kind, loaded.resolve(m.datasets[d].path)) for d in loaded.selected("datasets")]
    sim = await stack.enter_async_context(open_simulator(config, datasets))
    return sim.base_url


def sim_path(kind: str, base_url: str | None) -> str:
    """The API root on the simulator: ``sim:///v1`` names it; else the protocol's usual root."""
    path = (base_url or SIM_SCHEME)[len(SIM_SCHEME) :]
    if path:
        return path if path.startswith("/") else "/" + path
    return "/v1beta" if kind == "gemini" else "/v1"


def sim_options(kind: str) -> dict[str, object] | None:
    """Adapter options for a lane served by the simulator: protocols with no seed field send it
    in a header the simulator reads, so samples of one problem differ as they do on real hosts."""
    return {"seed_header": "x-sim-seed"} if kind in ("anthropic", "openai_responses", "gemini") else None
