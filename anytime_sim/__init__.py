"""The built-in simulated provider: a real aiohttp server on loopback speaking real wire protocols.

It is a test instrument: deterministic traces whose candidate answers converge with length at a
rate set by each model's skill, per-key RPM/TPM limits with real headers and 429s, and injectable
faults and transport quirks. It knows gold answers only from the dataset files it is given.

    async with open_simulator(SimConfig(time_scale=0), [("aime", path)]) as sim:
        ...  # point an OpenAI client at sim.base_url + "/v1"

Endpoints (one port, dialect by path): ``POST /v1/chat/completions``, ``POST /v1/responses``,
``POST /v1/messages`` (Anthropic), ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
(and ``:generateContent``), ``GET /v1/models``, ``GET /sim/stats`` (the `SimStats` as JSON).

Test-only request headers (real providers ignore unknown headers, so adapters may always send them):

- ``x-sim-mode: crlf,split,comments,...``: fault and transport modes (`runner.sim.faults`);
- ``x-sim-seed: N``: the sampling seed where the wire protocol has none (Anthropic, Responses);
  a top-level ``"seed"`` in the body works too;
- ``x-sim-attempt: N`` (or the SDKs' ``x-stainless-retry-count``): the attempt number that
  fault draws depend on; without it, identical request bodies count as retries of each other.
"""

from anytime_sim.app import open_simulator
from anytime_sim.models import BUILTIN_MODELS, PROFILES, SimConfig, SimModel
from anytime_sim.server import Simulator
from anytime_sim.stats import ModelStats, SimStats

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
