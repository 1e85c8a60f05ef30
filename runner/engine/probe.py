"""`anytime doctor`'s checks: key presence without a call, and one tiny streamed call per provider.

The live call goes through the same adapters a run uses; the simulator is started on loopback
for simulated providers. Key values are never read beyond whether they are set.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp
import anyio
import msgspec

from runner.config.keys import key_is_set
from runner.config.kinds import started_by_run
from runner.config.manifest import LoadedManifest
from runner.engine.simulator import sim_path
from runner.errors import ProviderError
from runner.providers.registry import default_base_url, make_adapter
from runner.types import ChatRequest, Content, Finish, Message, RateLimitReading, Reasoning, Usage

PROMPT = "Reply with the single word OK."


class Check(msgspec.Struct, kw_only=True):
    """One provider's result (also the ``--json`` output row)."""

    provider: str
    kind: str
    key_env: str | None
    key_set: bool | None  # None: the provider needs no key (or no selected model uses it)
    used: bool = True  # whether a selected model uses the provider (a run checks only those)
    status: str = "not called"  # ok | error class | skipped reason
    model: str | None = None
    http_status: int | None = None
    latency_s: float | None = None
    first_event_s: float | None = None
    request_id: str | None = None
    finish: str | None = None
    usage: Usage | None = None
    limits: RateLimitReading | None = None
    error: str | None = None


def offline_checks(loaded: LoadedManifest, env: Mapping[str, str], only: list[str] | None = None) -> list[Check]:
    """Key presence per provider, by the rule `anytime run` applies (`runner.config.keys`): only
    the providers the selected models use are checked. Never reads more of a key than whether it
    is non-empty."""
    used = set(loaded.lane_names())
    rows = []
    for name, p in loaded.manifest.providers.items():
        if only and name not in only:
            continue
        key_set = key_is_set(loaded, name, env) if name in used else None
        row = Check(provider=name, kind=p.kind, key_env=p.api_key_env, key_set=key_set, used=name in used)
        if not row.used:
            row.status = "skipped: no selected model uses this provider"
        rows.append(row)
    return rows


def _first_model(loaded: LoadedManifest, provider: str) -> str | None:
    """The model id of the first selected model on ``provider`` (None: no selected model uses it)."""
    models = loaded.manifest.models
    return next((models[k].model for k in loaded.selected("models") if models[k].provider == provider), None)


async def live_check(
    row: Check,
    loaded: LoadedManifest,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    *,
    sim_url: str | None = None,
    max_tokens: int = 16,
    time_limit: float = 60.0,
) -> Check:
    """One tiny streamed call for one provider; fills in ``row`` and returns it."""
    p = loaded.manifest.providers[row.provider]
    picked = _first_model(loaded, row.provider)
    if picked is None or not row.used:
        row.status = "skipped: no selected model uses this provider"
        return row
    if row.key_set is False:
        row.status = f"skipped: ${row.key_env} is not set"
        return row
    if started_by_run(p):
        if sim_url is None:
            row.status = "skipped: simulator not started"
            return row
        base_url = sim_url + sim_path(p.kind, p.base_url)
    else:
        base_url = p.base_url or default_base_url(p.kind) or ""
    if not base_url:
        row.status = "skipped: no base_url"
        return row
    row.model = picked
    key = env.get(p.api_key_env) if p.api_key_env else None
    adapter = make_adapter(row.provider, p, base_url, key)
    request = ChatRequest(model=row.model, messages=(Message("user", PROMPT),), max_output_tokens=max_tokens)
    start = time.perf_counter()
    try:
        with anyio.fail_after(time_limit):
            async with adapter.stream(session, request) as resp:
                row.http_status, row.request_id, row.limits = resp.status, resp.request_id, resp.limits
                async for event in resp.events:
                    if row.first_event_s is None and isinstance(event, Content | Reasoning):
                        row.first_event_s = time.perf_counter() - start
                    if isinstance(event, Finish):
                        row.finish = event.reason
                    elif isinstance(event, Usage):
                        row.usage = event
        row.status = "ok"
    except ProviderError as exc:
        row.status = exc.error_class
        row.http_status = exc.status
        row.limits = getattr(exc, "limits", None)
        row.error = str(exc)
    except TimeoutError:
        row.status = "timeout"
        row.error = f"no complete answer within {time_limit:g}s"
    row.latency_s = time.perf_counter() - start
    return row


@contextlib.asynccontextmanager
async def _maybe_simulator(loaded: LoadedManifest, rows: list[Check]) -> AsyncIterator[str | None]:
    m = loaded.manifest
    if not any(r.used and started_by_run(m.providers[r.provider]) for r in rows):
        yield None
        return
    from anytime_sim import SimConfig, open_simulator

    config = SimConfig.from_table(msgspec.to_builtins(m.simulator))
    datasets = [(m.datasets[d].kind, loaded.resolve(m.datasets[d].path)) for d in loaded.selected("datasets")]
    async with open_simulator(config, datasets) as sim:
        yield sim.base_url


async def run_live(
    loaded: LoadedManifest,
    rows: list[Check],
    env: Mapping[str, str],
    *,
    max_tokens: int = 16,
    time_limit: float = 60.0,
) -> list[Check]:
    """Check every row concurrently (one call each)."""
    async with _maybe_simulator(loaded, rows) as sim_url, aiohttp.ClientSession() as session:
        async with anyio.create_task_group() as tg:
            for row in rows:
                tg.start_soon(_run_one, row, loaded, env, session, sim_url, max_tokens, time_limit)
    return rows


async def _run_one(
    row: Check,
    loaded: LoadedManifest,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    sim_url: str | None,
    max_tokens: int,
    time_limit: float,
) -> None:
    await live_check(row, loaded, env, session, sim_url=sim_url, max_tokens=max_tokens, time_limit=time_limit)
