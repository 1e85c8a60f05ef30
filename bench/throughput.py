"""Throughput at the rate limit: N calls against the simulator under RPM and TPM limits.

The simulator runs in its own process (``anytime sim --rpm R --tpm T --limit-window W``) with one
pair of buckets per key, refilled linearly at ``limit / 60`` per second and full at the start, as
providers.md §8 describes OpenAI's. ``W`` is the window the per-minute limits are enforced over
(``--window``, default 1 s: at most a second's share of each limit at once, as OpenAI documents it
may; 60 s lets a whole minute's limit go at once). The client runs the calls through one lane
twice, each against a fresh simulator:

1. ``given``: the lane is told RPM and TPM;
2. ``learned``: the lane starts with no limits and learns them from ``x-ratelimit-*`` headers.

Lower bound. Every call served costs one request and ``prompt + output`` tokens (the simulator
refunds the unused output cap; requests it refused with a 429 cost nothing and are not counted).
A bucket holds ``C = limit × W / 60`` and starts full, so by time t it can have admitted at most
``max(C, one call) + limit / 60 × t``; the last call is admitted no sooner than that allows and
then takes at least one call's latency:

    bound = max((calls - C_requests) / RPM, (tokens - C_tokens) / TPM) × 60 s + min latency

with ``C_tokens`` at least the largest call's tokens (a call larger than a window's share is
admitted into a full window). One call's latency is the fastest of a few calls on a separate key
and model before the run (the fastest, not the median: a bound must not be padded). The plainer
``max(calls / RPM, tokens / TPM) × 60 s + latency`` ignores the initial burst; it is printed as
``naive_bound_s``.

The lane is the scheduler's (`runner.engine.lane.Lane`: spend guard, limiter, adapter, timeouts,
retries, one ledger record per attempt, here into a counting sink). (A ``--via direct`` mode that
drove the adapter + `LaneLimiter` + `RetryPolicy` by hand was removed: its loop was a copy of the
lane's, which a benchmark must not keep.)

Usage: ``python bench/throughput.py [--calls 20000 --rpm 9000 --tpm 0 --max-tokens 32]
[--window 1] [--burst-s 0.5]`` (``--tpm 0`` picks the TPM at which tokens bind as hard as
requests). The last line holds ``wall_over_bound=``, ``n429=``, ``share429=``,
``wall_over_bound_learned=`` and friends as ``name=value`` pairs.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402
import anyio  # noqa: E402
import msgspec  # noqa: E402

from runner.engine.limits import DEFAULT_BURST_S, LaneLimiter  # noqa: E402
from runner.engine.retry import RetryPolicy  # noqa: E402
from runner.errors import ProviderError  # noqa: E402
from runner.providers.openai_chat import OpenAIChatAdapter  # noqa: E402
from runner.tokens.count import count_chat_tokens  # noqa: E402
from runner.tokens.encodings import get_encoding  # noqa: E402
from runner.types import (  # noqa: E402
    ChatRequest,
    Message,
)

MODEL = "sim-gpt-4.1"  # a plain model that always runs to its output cap: fixed cost per call
PROBE_MODEL = "sim-gpt-4o"  # same speed, its own counters: the latency probe stays out of the figures


class SimProcess:
    """``anytime sim`` in a child process, on a free loopback port."""

    def __init__(self, *args: str) -> None:
        exe = Path(sys.executable).with_name("anytime")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "runner.cli"]
        self.proc = subprocess.Popen(
            [*cmd, "sim", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.close()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.base_url = line.split("listening on", 1)[1].split()[0]
        self.pid = self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def sim_stats(session: aiohttp.ClientSession, base_url: str) -> dict[str, object]:
    async with session.get(f"{base_url}/sim/stats") as resp:
        return msgspec.json.decode(await resp.read())  # type: ignore[no-any-return]


def prompt_tokens(messages: tuple[Message, ...]) -> int:
    """The prompt as the runner counts it for admission (and OpenAI, and the simulator, bill it)."""
    return count_chat_tokens(get_encoding("o200k_base"), messages)


def request_for(i: int, max_tokens: int, model: str = MODEL) -> ChatRequest:
    # distinct bodies, so the simulator does not take identical requests for retries of one another
    text = f"Problem {i:05d}: what is the sum of the first {i % 97 + 3} odd numbers? Reason briefly."
    return ChatRequest(model=model, messages=(Message("user", text),), max_output_tokens=max_tokens)


@dataclass
class RunResult:
    wall_s: float
    calls: int
    errors: int
    retries: int
    tokens: int  # billed by the simulator: prompt + output
    n429: int
    sim_requests: int
    largest_call: int  # tokens the largest call reserves: prompt + output cap


async def probe_latency(base_url: str, max_tokens: int, n: int = 5) -> float:
    """The fastest of ``n`` calls on their own key (the runs' buckets stay untouched)."""
    adapter = OpenAIChatAdapter(f"{base_url}/v1", "bench-probe", provider="sim")
    times = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            t0 = time.perf_counter()
            async with adapter.stream(session, request_for(10**6 + i, max_tokens, PROBE_MODEL)) as resp:
                async for _ in resp.events:
                    pass
            times.append(time.perf_counter() - t0)
    return min(times)


class NullConsumer:
    """Takes the text and counts nothing (usage comes from the provider's usage chunk)."""

    def on_reasoning(self, text: str) -> bool:
        return False

    def on_content(self, text: str) -> bool:
        return False

    def output_tokens_counted(self) -> tuple[int, int]:
        return 0, 0


async def run_lane(
    base_url: str,
    key: str,
    calls: int,
    rpm: int | None,
    tpm: int | None,
    concurrency: int,
    max_tokens: int,
    burst_s: float,
) -> tuple[float, int, int]:
    """Drive the scheduler's `Lane` from `concurrency` workers. Returns (wall, errors, retries)."""
    from runner.engine.lane import CallSpec, Lane
    from runner.engine.spend import SpendGuard
    from runner.ledger.memory import MemorySink
    from runner.ledger.prices import ModelPrice

    price = ModelPrice(input=2.0, output=8.0)
    specs = [
        CallSpec(
            job_id=f"j{i}", kind="answer", model=MODEL, request=r, prompt_tokens=prompt_tokens(r.messages), price=price
        )
        for i, r in ((i, request_for(i, max_tokens)) for i in range(calls))
    ]
    jobs = iter(specs)
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        lane = Lane(
            name="sim",
            adapter=OpenAIChatAdapter(f"{base_url}/v1", key, provider="sim"),
            limiter=LaneLimiter(rpm=rpm, tpm=tpm, max_concurrency=concurrency, burst_s=burst_s),
            policy=RetryPolicy(max_attempts=8, seed=0),
            session=session,
            ledger=MemorySink(keep=False),
            spend=SpendGuard(None, {}),
            first_token_timeout=60.0,
            idle_timeout=60.0,
            total_timeout=600.0,
        )

        async def worker() -> None:
            nonlocal errors
            for spec in jobs:
                try:
                    await lane.call(spec, NullConsumer)
                except ProviderError:
                    errors += 1

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        wall = time.perf_counter() - t0
    return wall, errors, lane.counters.retries


async def one_run(label: str, args: argparse.Namespace, tpm: int, rpm_known: bool) -> tuple[RunResult, float]:
    window = ("--limit-window", str(args.window))
    with SimProcess("--rpm", str(args.rpm), "--tpm", str(tpm), *window, "--chunk-tokens", "4") as sim:
        latency = await probe_latency(sim.base_url, args.max_tokens)
        wall, errors, retries = await run_lane(
            sim.base_url,
            f"bench-{label}",
            args.calls,
            args.rpm if rpm_known else None,
            tpm if rpm_known else None,
            args.concurrency,
            args.max_tokens,
            args.burst_s,
        )
        async with aiohttp.ClientSession() as session:
            stats = await sim_stats(session, sim.base_url)
    model = stats["models"][MODEL]  # type: ignore[index]
    result = RunResult(
        wall_s=wall,
        calls=args.calls,
        errors=errors,
        retries=retries,
        tokens=int(model["input_tokens"]) + int(model["output_tokens"]),
        n429=int(model["rate_limited"]),
        sim_requests=int(model["requests"]),
        largest_call=max(prompt_tokens(request_for(i, args.max_tokens).messages) for i in range(args.calls))
        + args.max_tokens,
    )
    return result, latency


def bounds(r: RunResult, rpm: int, tpm: int, window_s: float, latency: float) -> tuple[float, float]:
    """The true lower bound on the wall time against buckets enforced over ``window_s``, and the naive one."""
    held_requests = rpm * window_s / 60.0
    held_tokens = max(tpm * window_s / 60.0, float(r.largest_call))
    served = r.sim_requests - r.n429  # a failed call was never served: it does not count
    strict = max((served - held_requests) / rpm, (r.tokens - held_tokens) / tpm, 0.0) * 60.0 + latency
    naive = max(served / rpm, r.tokens / tpm) * 60.0 + latency
    return strict, naive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rpm", type=int, default=9_000)
    parser.add_argument("--tpm", type=int, default=0, help="0: as binding as the RPM (default)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument(
        "--window", type=float, default=1.0, help="seconds the simulator enforces the limits over (1 or 60)"
    )
    parser.add_argument(
        "--burst-s", type=float, default=DEFAULT_BURST_S, help="the lane's burst_s (providers.<name>.burst_s)"
    )
    parser.add_argument("--only", choices=("given", "learned"), default=None)
    args = parser.parse_args()

    sample = [prompt_tokens(request_for(i, args.max_tokens).messages) for i in range(0, args.calls, 97)]
    per_call = round(sum(sample) / len(sample)) + args.max_tokens
    tpm = args.tpm or args.rpm * per_call
    print(
        f"# {args.calls} calls, rpm={args.rpm} tpm={tpm}, ~{per_call} tokens/call, "
        f"concurrency {args.concurrency}, limits enforced over {args.window:g} s windows, "
        f"lane burst {args.burst_s:g} s",
        flush=True,
    )
    fields: dict[str, object] = {
        "calls": args.calls,
        "rpm": args.rpm,
        "tpm": tpm,
        "window_s": args.window,
        "burst_s": args.burst_s,
    }
    for label, known in (("given", True), ("learned", False)):
        if args.only and args.only != label:
            continue
        result, latency = anyio.run(one_run, label, args, tpm, known)
        strict, naive = bounds(result, args.rpm, tpm, args.window, latency)
        share429 = result.n429 / max(1, result.sim_requests)
        suffix = "" if label == "given" else "_learned"
        print(
            f"{label:8s} wall {result.wall_s:7.2f} s  bound {strict:7.2f} s  (naive {naive:6.2f} s)  "
            f"wall/bound {result.wall_s / strict:.3f}  429s {result.n429} ({share429:.2%} of "
            f"{result.sim_requests} requests)  retries {result.retries}  "
            f"errors {result.errors}  latency {latency * 1000:.0f} ms",
            flush=True,
        )
        fields |= {
            f"wall_s{suffix}": round(result.wall_s, 2),
            f"bound_s{suffix}": round(strict, 2),
            f"naive_bound_s{suffix}": round(naive, 2),
            f"wall_over_bound{suffix}": round(result.wall_s / strict, 3),
            f"n429{suffix}": result.n429,
            f"share429{suffix}": round(share429, 4),
            f"errors{suffix}": result.errors,
        }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
