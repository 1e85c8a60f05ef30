"""``anytime sim``: serve the simulated provider on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from anytime_sim.faults import ALL_MODES, FaultRates
from anytime_sim.knowledge import TASK_KINDS
from anytime_sim.models import SimConfig
from anytime_sim.stats import SimStats
from runner.cli.conventions import ExitCode
from runner.errors import ConfigError


def _dataset(value: str) -> tuple[str, Path]:
    path, sep, kind = value.rpartition(":")
    if not sep or kind not in TASK_KINDS:
        raise argparse.ArgumentTypeError(f"expected PATH:KIND with KIND in {'|'.join(TASK_KINDS)}, got {value!r}")
    return kind, Path(path)


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"a fault rate must be in [0, 1], got {value}")
    return rate


def _window(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 60], got {value!r}") from None
    if not 0.0 < seconds <= 60.0:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 60], got {value}")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port (0 picks a free one; default 8900)")
    parser.add_argument(
        "--data",
        type=_dataset,
        action="append",
        default=[],
        metavar="PATH:KIND",
        help=f"a dataset file to know answers from; KIND in {'|'.join(TASK_KINDS)} (repeatable)",
    )
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute per key (default unlimited)")
    parser.add_argument("--tpm", type=int, default=None, help="tokens per minute per key (default unlimited)")
    parser.add_argument(
        "--limit-window",
        type=_window,
        default=60.0,
        metavar="SECONDS",
        help="enforce the per-minute limits over windows this long (1: a second's share at most, as "
        "OpenAI may; default 60: a whole minute's limit at once)",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="1 = real speed, 0 = no delays (default 1)")
    parser.add_argument("--chunk-tokens", type=int, default=4, help="tokens per streamed chunk (default 4)")
    parser.add_argument("--error-5xx", type=_rate, default=0.0, help="rate of 5xx answers before the stream")
    parser.add_argument("--drop", type=_rate, default=0.0, help="rate of connections cut mid-stream")
    parser.add_argument("--malformed", type=_rate, default=0.0, help="rate of malformed chunks")
    parser.add_argument("--stall", type=_rate, default=0.0, help="rate of mid-stream stalls")
    parser.add_argument("--stall-seconds", type=float, default=30.0, help="length of a stall (default 30)")
    parser.add_argument("--error-in-stream", type=_rate, default=0.0, help="rate of error events inside a stream")
    parser.add_argument(
        "--storm", type=_rate, default=0.0, help="rate of requests that set off a 429 storm on their key"
    )
    parser.add_argument("--storm-seconds", type=float, default=2.0, help="length of a 429 storm (default 2)")
    parser.add_argument("--trickle", type=_rate, default=0.0, help="rate of streams that slow to a trickle part-way")
    parser.add_argument(
        "--trickle-seconds", type=float, default=0.5, help="gap between a trickle's chunks (default 0.5)"
    )
    parser.add_argument("--reset", type=_rate, default=0.0, help="rate of connections reset before the response")
    parser.add_argument(
        "--mode",
        action="append",
        default=[],
        choices=ALL_MODES,
        help="a fault or transport mode for every request",
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The `SimConfig` that command-line arguments describe."""
    faults = FaultRates(
        error_5xx=args.error_5xx,
        drop_mid_stream=args.drop,
        malformed_chunk=args.malformed,
        stall=args.stall,
        stall_seconds=args.stall_seconds,
        rate_limit_storm=args.storm,
        storm_seconds=args.storm_seconds,
        trickle=args.trickle,
        trickle_seconds=args.trickle_seconds,
        reset=args.reset,
    )
    try:
        return SimConfig(
            rpm=args.rpm,
            tpm=args.tpm,
            limit_window_s=args.limit_window,
            time_scale=args.time_scale,
            chunk_tokens=args.chunk_tokens,
            faults=faults,
            error_in_stream=args.error_in_stream,
            modes=tuple(args.mode),
        )
    except ValueError as exc:
        raise ConfigError(f"anytime sim: {exc}") from None


def print_stats(stats: SimStats) -> None:
    """One line per model that was called: what the simulator served and refused."""
    for name, m in sorted(stats.models.items()):
        faults = ", ".join(f"{k} {v}" for k, v in sorted(m.faults.items())) or "none"
        print(
            f"{name}: {m.requests} requests, {m.rate_limited} x 429, {m.input_tokens} tokens in "
            f"({m.cached_input_tokens} cached), {m.output_tokens} out ({m.reasoning_tokens} reasoning), "
            f"faults: {faults}",
            file=sys.stderr,
        )


async def serve(args: argparse.Namespace) -> None:
    from anytime_sim.app import open_simulator

    config = config_from_args(args)
    try:
        async with open_simulator(config, args.data, host=args.host, port=args.port) as sim:
            print(f"simulator listening on {sim.base_url}  (OpenAI base_url: {sim.base_url}/v1)", flush=True)
            print(f"models: {', '.join(sorted(config.models))}", flush=True)
            print(
                f"knows {len(sim.index)} problems; stats at {sim.base_url}/sim/stats; Ctrl-C to stop",
                flush=True,
            )
            try:
                await asyncio.Event().wait()
            finally:
                print_stats(sim.stats())
    except OSError as exc:  # only binding can fail this way: the body just waits
        raise ConfigError(f"anytime sim: cannot listen on {args.host}:{args.port}: {exc.strerror}") from None


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        print("simulator stopped", file=sys.stderr)
        return ExitCode.INTERRUPTED  # its usual end, but the same code as every command's Ctrl-C
    return ExitCode.DONE
