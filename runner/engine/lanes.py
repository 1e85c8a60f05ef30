"""Opening a run's lanes: one HTTP session, adapter, limiter and retry policy per provider key."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import aiohttp

from runner.config.calls import FIRST_TOKEN_S, IDLE_S
from runner.config.kinds import started_by_run
from runner.config.manifest import LoadedManifest
from runner.engine.lane import Lane, RecordSink
from runner.engine.limits import LaneLimiter, Limiter
from runner.engine.retry import RetryPolicy
from runner.engine.simulator import sim_options, sim_path
from runner.engine.spend import SpendGate
from runner.providers.registry import default_base_url, make_adapter


def lane_base_url(loaded: LoadedManifest, name: str, sim_url: str | None) -> str:
    """Where a lane sends its calls: the simulator started for the run, the manifest's URL, or the
    provider kind's public endpoint."""
    provider = loaded.manifest.providers[name]
    if started_by_run(provider):
        assert sim_url is not None, "the simulator must be started before its lanes are opened"
        return sim_url + sim_path(provider.kind, provider.base_url)
    return provider.base_url or default_base_url(provider.kind) or ""


async def open_lanes(
    loaded: LoadedManifest,
    stack: contextlib.AsyncExitStack,
    *,
    sim_url: str | None,
    keys: dict[str, str | None],
    ledger: RecordSink,
    spend: SpendGate,
    on_tokens: Callable[[int, int], None] = lambda _input, _output: None,
    limiter_of: Callable[[str], Limiter] | None = None,
) -> dict[str, Lane]:
    """One lane per provider the selected models use; the sessions close with ``stack``.

    ``limiter_of`` gives a lane's limiter by name (a worker process leases from the coordinator's);
    by default each lane gets its own `LaneLimiter` from the manifest's limits.
    """
    lanes: dict[str, Lane] = {}
    for name in loaded.lane_names():
        provider = loaded.manifest.providers[name]
        connector = aiohttp.TCPConnector(limit=provider.max_concurrency, limit_per_host=provider.max_concurrency)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=provider.timeouts.connect),
            )
        )
        options = sim_options(provider.kind) if started_by_run(provider) else None
        lanes[name] = Lane(
            name=name,
            adapter=make_adapter(name, provider, lane_base_url(loaded, name, sim_url), keys[name], options=options),
            limiter=limiter_of(name)
            if limiter_of is not None
            else LaneLimiter(
                rpm=provider.rpm, tpm=provider.tpm, max_concurrency=provider.max_concurrency, burst_s=provider.burst_s
            ),
            # a call waits out 429s for as long as one attempt may last, without using up attempts
            policy=RetryPolicy(max_attempts=provider.max_attempts, rate_limit_patience_s=provider.timeouts.total),
            session=session,
            ledger=ledger,
            spend=spend,
            # each call carries its model's timeouts (by fidelity); these are the lane's fallback
            first_token_timeout=provider.timeouts.first_token or FIRST_TOKEN_S["raw"],
            idle_timeout=provider.timeouts.idle or IDLE_S["raw"],
            total_timeout=provider.timeouts.total,
            on_tokens=on_tokens,
            key_env=provider.api_key_env,
        )
    return lanes
