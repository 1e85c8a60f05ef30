"""`anytime doctor MANIFEST [--live]`: check keys and limits before a big sweep.

Without ``--live`` nothing leaves the machine: each provider's key variable is checked for
presence (its value is never printed). With ``--live`` each provider gets one tiny call (a few
output tokens) with the first model the manifest assigns to it, and the answer's status,
latency, model and rate-limit reading are printed. Simulated providers are checked against a
simulator started on loopback for the occasion.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp
import anyio
import msgspec

from runner.config.manifest import LoadedManifest, load_manifest
from runner.errors import ProviderError
from runner.providers.registry import KEYLESS_KINDS, default_base_url, make_adapter
from runner.types import ChatRequest, Content, Finish, Message, RateLimitReading, Reasoning, Usage

SIM_SCHEME = "sim://"
PROMPT = "Reply with the single word OK."


class Check(msgspec.Struct, kw_only=True):
    """One provider's result (also the ``--json`` output row)."""

    provider: str
    kind: str
    key_env: str | None
    key_set: bool | None  # None: the provider needs no key
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="path to the sweep manifest (TOML)")
    parser.add_argument("--live", action="store_true", help="make one tiny real call per provider")
    parser.add_argument("--provider", action="append", default=None, help="check only this provider (repeatable)")
    parser.add_argument("--max-tokens", type=int, default=16, help="output cap of each live call (default 16)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per live call (default 60)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per provider")


def _is_sim(kind: str, base_url: str | None) -> bool:
    return kind == "sim" or (base_url or "").startswith(SIM_SCHEME)


def offline_checks(loaded: LoadedManifest, env: Mapping[str, str], only: list[str] | None = None) -> list[Check]:
    """Key presence per provider; never reads more of a key than whether it is non-empty."""
    rows = []
    for name, p in loaded.manifest.providers.items():
        if only and name not in only:
            continue
        if _is_sim(p.kind, p.base_url) or (p.kind in KEYLESS_KINDS and p.api_key_env is None):
            key_set = None  # the simulator accepts any key; a local server may need none
        else:
            key_set = bool(env.get(p.api_key_env or ""))
        rows.append(Check(provider=name, kind=p.kind, key_env=p.api_key_env, key_set=key_set))
    return rows


def _first_model(loaded: LoadedManifest, provider: str) -> str | None:
    return next((m.model for m in loaded.manifest.models.values() if m.provider == provider), None)


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
    if picked is None:
        row.status = "skipped: no model uses this provider"
        return row
    if row.key_set is False:
        row.status = f"skipped: ${row.key_env} is not set"
        return row
    if _is_sim(p.kind, p.base_url):
        if sim_url is None:
            row.status = "skipped: simulator not started"
            return row
        base_url = sim_url + (p.base_url or SIM_SCHEME)[len(SIM_SCHEME) :]
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
    if not any(_is_sim(r.kind, m.providers[r.provider].base_url) for r in rows):
        yield None
        return
    try:
        from anytime_sim import SimConfig, open_simulator
    except ImportError:
        yield None
        return
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


def _limits_text(r: RateLimitReading | None) -> str:
    if r is None or r.is_empty():
        return "no rate-limit headers"
    parts = []
    if r.limit_requests is not None or r.remaining_requests is not None:
        parts.append(f"requests {r.remaining_requests}/{r.limit_requests}")
    if r.limit_tokens is not None or r.remaining_tokens is not None:
        parts.append(f"tokens {r.remaining_tokens}/{r.limit_tokens}")
    if r.reset_tokens_s is not None:
        parts.append(f"tokens reset in {r.reset_tokens_s:g}s")
    if r.retry_after_s is not None:
        parts.append(f"retry after {r.retry_after_s:g}s")
    return ", ".join(parts)


def format_row(row: Check, live: bool) -> str:
    if row.key_set is None:
        key = "no key needed"
    else:
        key = f"${row.key_env} {'set' if row.key_set else 'NOT SET'}"
    line = f"{row.provider} ({row.kind}): {key}"
    if not live:
        return line
    line += f"\n  {row.status}"
    if row.model:
        line += f"  model={row.model}"
    if row.http_status is not None:
        line += f"  http={row.http_status}"
    if row.latency_s is not None:
        line += f"  latency={row.latency_s:.2f}s"
    if row.first_event_s is not None:
        line += f"  first_token={row.first_event_s:.2f}s"
    if row.finish:
        line += f"  finish={row.finish}"
    if row.usage is not None:
        line += f"  tokens in/out={row.usage.input_tokens}/{row.usage.output_tokens}"
    if row.status not in ("not called",) and not row.status.startswith("skipped"):
        line += f"\n  limits: {_limits_text(row.limits)}"
    if row.error:
        line += f"\n  error: {row.error}"
    return line


def main(args: argparse.Namespace) -> int:
    loaded = load_manifest(args.manifest)
    env = dict(os.environ)
    rows = offline_checks(loaded, env, args.provider)
    if args.live:
        rows = anyio.run(lambda: run_live(loaded, rows, env, max_tokens=args.max_tokens, time_limit=args.timeout))
    for row in rows:
        print(msgspec.json.encode(row).decode() if args.json else format_row(row, args.live))
    missing = any(r.key_set is False for r in rows)
    failed = args.live and any(r.status != "ok" and not r.status.startswith("skipped") for r in rows)
    return 1 if missing or failed else 0
