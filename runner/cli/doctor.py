"""`anytime doctor MANIFEST [--live]`: check keys and limits before a big sweep.

Without ``--live`` nothing leaves the machine: the manifest gets the checks every command shares
(`runner.engine.preflight`: datasets, methods, encodings, prices), and the key variable of each
provider the selected models use is checked for presence by the rule `anytime run` applies (its
value is never printed). A missing key is bad input (exit 2). With ``--live`` each provider gets one tiny call (a few
output tokens) with the first model the manifest assigns to it, and the answer's status,
latency, model and rate-limit reading are printed. Simulated providers are checked against a
simulator started on loopback for the occasion.
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio
import msgspec

from runner.cli.conventions import ExitCode
from runner.config.keys import missing_key_error
from runner.config.manifest import load_manifest
from runner.engine.preflight import preflight
from runner.engine.probe import Check, offline_checks, run_live
from runner.types import RateLimitReading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="path to the sweep manifest (TOML)")
    parser.add_argument("--live", action="store_true", help="make one tiny real call per provider")
    parser.add_argument("--provider", action="append", default=None, help="check only this provider (repeatable)")
    parser.add_argument("--max-tokens", type=int, default=16, help="output cap of each live call (default 16)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per live call (default 60)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per provider")


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
    if not row.used:
        return f"{row.provider} ({row.kind}): not used by the selected models"
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
    preflight(loaded, keys=False)  # keys are listed below, every provider's, not only the first missing
    rows = offline_checks(loaded, env, args.provider)
    if args.live:
        rows = anyio.run(lambda: run_live(loaded, rows, env, max_tokens=args.max_tokens, time_limit=args.timeout))
    for row in rows:
        print(msgspec.json.encode(row).decode() if args.json else format_row(row, args.live))
    missing = [r for r in rows if r.key_set is False]
    for row in missing:
        print(f"error: {missing_key_error(loaded, row.provider)}", file=sys.stderr)
    failed = args.live and any(r.status != "ok" and not r.status.startswith("skipped") for r in rows)
    # a key variable not set is bad input, as `anytime run` says too; a failed live check fails
    return ExitCode.BAD_INPUT if missing else ExitCode.FAILED if failed else ExitCode.DONE
