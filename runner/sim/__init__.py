"""The built-in simulated provider: a real aiohttp server on loopback speaking real wire protocols.

It is a test instrument: deterministic traces whose candidate answers converge with length at a
rate set by each model's skill, per-key RPM/TPM limits with real headers and 429s, and injectable
faults and transport quirks. It knows gold answers only from the dataset files it is given.

    async with open_simulator(SimConfig(time_scale=0), [("aime", path)]) as sim:
        ...  # point an OpenAI client at sim.base_url + "/v1"
"""

from runner.sim.models import BUILTIN_MODELS, PROFILES, SimConfig, SimModel
from runner.sim.server import Simulator, open_simulator
from runner.sim.stats import ModelStats, SimStats

__all__ = [
    "BUILTIN_MODELS",
    "PROFILES",
    "ModelStats",
    "SimConfig",
    "SimModel",
    "SimStats",
    "Simulator",
    "open_simulator",
]
