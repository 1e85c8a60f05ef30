"""Throughput at the rate limit: N calls against the simulator under RPM and TPM limits.

The simulator runs in its own process (``anytime sim --rpm R --tpm T``) with one pair of buckets
per key, refilled linearly per minute and full at the start, exactly as providers.md §8 describes
OpenAI's. The client runs the calls through one lane twice, each against a fresh simulator:

1. ``given``: the lane is told RPM and TPM;
2. ``learned``: the lane starts with no limits and learns them from ``x-ratelimit-*`` headers.

Lower bound. Every call costs one request and ``prompt + output`` tokens (the simulator refunds
the unused output cap). Because a bucket starts full, the first ``RPM`` requests (and ``TPM``
tokens) are free of waiting, so no client can finish faster than

    bound = max((calls - RPM) / RPM, (tokens - TPM) / TPM) × 60 s + one call's latency

The issue's plainer bound, ``max(calls / RPM, tokens / TPM) × 60 s + latency``, ignores that
initial burst and would flatter us by the burst's length; it is printed as ``naive_bound_s``.
One call's latency is the median of a few calls on a separate key before the run.

The lane is the scheduler's (`runner.engine.lane.Lane`: spend guard, limiter, adapter, timeouts,
retries, one ledger record per attempt, here into a counting sink); ``--via direct`` drives the
adapter + `LaneLimiter` + `RetryPolicy` without it, to tell the limiter's share from the lane's.

Usage: ``python bench/throughput.py [--calls 20000 --rpm 9000 --tpm 0 --max-tokens 32]``
(``--tpm 0`` picks the TPM at which tokens bind as hard as requests). The last line holds
``wall_over_bound=``, ``n429=``, ``wall_over_bound_learned=`` and friends as ``name=value`` pairs.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import itertools  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402
import anyio  # noqa: E402
import msgspec  # noqa: E402

from runner.engine.limits import LaneLimiter  # noqa: E402
from runner.engine.retry import RetryPolicy  # noqa: E402
from runner.errors import ProviderError  # noqa: E402
from runner.providers.openai_chat import OpenAIChatAdapter  # noqa: E402
from runner.tokens.encodings import get_encoding  # noqa: E402
from runner.types import (  # noqa: E402
    ChatRequest,
    Message,
    Usage,
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
    """Count as OpenAI does (and the simulator): 3 framing tokens + role + content per message, 3 to
    prime the reply."""
    enc = get_encoding("o200k_base")
    return sum(3 + len(enc.encode_ordinary(m.role)) + len(enc.encode_ordinary(m.content)) for m in messages) + 3


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


async def probe_latency(base_url: str, max_tokens: int, n: int = 5) -> float:
    """Median latency of one call on its own key (the runs' buckets stay untouched)."""
    adapter = OpenAIChatAdapter(f"{base_url}/v1", "bench-probe", provider="sim")
    times = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            t0 = time.perf_counter()
            async with adapter.stream(session, request_for(10**6 + i, max_tokens, PROBE_MODEL)) as resp:
                async for _ in resp.events:
                    pass
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _learn_from_refusal(limiter: LaneLimiter, policy: RetryPolicy, exc: ProviderError, attempt: int) -> float | None:
    """Tell the limiter what a refused attempt says, as a lane does; the delay before the next
    attempt, or None to give up."""
    limits = getattr(exc, "limits", None)
    if limits is not None:
        limiter.observe(limits)
    if exc.error_class == "rate_limit":
        limiter.on_rate_limited(exc.retry_after_s)
    elif exc.retryable:
        limiter.on_server_error()
    return policy.delay(attempt, exc)


async def run_direct(
    base_url: str, key: str, calls: int, rpm: int | None, tpm: int | None, concurrency: int, max_tokens: int
) -> tuple[float, int, int]:
    """Drive the adapter + LaneLimiter + RetryPolicy as a lane does. Returns (wall, errors, retries)."""
    adapter = OpenAIChatAdapter(f"{base_url}/v1", key, provider="sim")
    limiter = LaneLimiter(rpm=rpm, tpm=tpm, max_concurrency=concurrency)
    policy = RetryPolicy(max_attempts=8, seed=0)
    jobs = iter(range(calls))
    errors = retries = 0
    specs = [(request_for(i, max_tokens), 0) for i in range(calls)]
    specs = [(r, prompt_tokens(r.messages)) for r, _ in specs]

    async def one(session: aiohttp.ClientSession, request: ChatRequest, prompt: int) -> None:
        nonlocal errors, retries
        for attempt in itertools.count(1):
            reservation = await limiter.acquire(prompt + request.max_output_tokens)
            usage: Usage | None = None
            try:
                async with adapter.stream(session, request) as resp:
                    reservation.observe(resp.limits)
                    async for event in resp.events:
                        if isinstance(event, Usage):
                            usage = event
            except ProviderError as exc:
                # refused before the stream: the provider charged nothing (or refunded it)
                reservation.settle(0)
                delay = _learn_from_refusal(limiter, policy, exc, attempt)
                if delay is None:
                    errors += 1
                    return
                retries += 1
                limiter.on_retry()
                await anyio.sleep(delay)
                continue
            reservation.settle(usage.input_tokens + usage.output_tokens if usage else prompt)
            limiter.on_success()
            return

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in jobs:
            await one(session, *specs[i])

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker, session)
        wall = time.perf_counter() - t0
    return wall, errors, retries


class CountingSink:
    """The ledger's place: counts records instead of writing them."""

    def __init__(self) -> None:
        self.records = 0

    def append(self, record: object) -> None:
        self.records += 1


class NullConsumer:
    """Takes the text and counts nothing (usage comes from the provider's usage chunk)."""

    def on_reasoning(self, text: str) -> bool:
        return False

    def on_content(self, text: str) -> bool:
        return False

    def output_tokens_counted(self) -> tuple[int, int]:
        return 0, 0


async def run_lane(
    base_url: str, key: str, calls: int, rpm: int | None, tpm: int | None, concurrency: int, max_tokens: int
) -> tuple[float, int, int]:
    """Drive the scheduler's `Lane` from `concurrency` workers. Returns (wall, errors, retries)."""
    from runner.engine.lane import CallSpec, Lane
    from runner.engine.spend import SpendGuard
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
            limiter=LaneLimiter(rpm=rpm, tpm=tpm, max_concurrency=concurrency),
            policy=RetryPolicy(max_attempts=8, seed=0),
            session=session,
            ledger=CountingSink(),
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
    with SimProcess("--rpm", str(args.rpm), "--tpm", str(tpm), "--chunk-tokens", "4") as sim:
        latency = await probe_latency(sim.base_url, args.max_tokens)
        run = run_lane if args.via == "lane" else run_direct
        wall, errors, retries = await run(
            sim.base_url,
            f"bench-{label}",
            args.calls,
            args.rpm if rpm_known else None,
            tpm if rpm_known else None,
            args.concurrency,
            args.max_tokens,
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
    )
    return result, latency


def bounds(r: RunResult, rpm: int, tpm: int, latency: float) -> tuple[float, float]:
    tokens = r.tokens
    strict = max((r.calls - rpm) / rpm, (tokens - tpm) / tpm, 0.0) * 60.0 + latency
    naive = max(r.calls / rpm, tokens / tpm) * 60.0 + latency
    return strict, naive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rpm", type=int, default=9_000)
    parser.add_argument("--tpm", type=int, default=0, help="0: as binding as the RPM (default)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--only", choices=("given", "learned"), default=None)
    parser.add_argument("--via", choices=("lane", "direct"), default="lane")
    args = parser.parse_args()

    sample = [prompt_tokens(request_for(i, args.max_tokens).messages) for i in range(0, args.calls, 97)]
    per_call = round(sum(sample) / len(sample)) + args.max_tokens
    tpm = args.tpm or args.rpm * per_call
    print(
        f"# {args.calls} calls, rpm={args.rpm} tpm={tpm}, ~{per_call} tokens/call, "
        f"concurrency {args.concurrency}, via {args.via}",
        flush=True,
    )
    fields: dict[str, object] = {"calls": args.calls, "rpm": args.rpm, "tpm": tpm, "via": args.via}
    for label, known in (("given", True), ("learned", False)):
        if args.only and args.only != label:
            continue
        result, latency = anyio.run(one_run, label, args, tpm, known)
        strict, naive = bounds(result, args.rpm, tpm, latency)
        suffix = "" if label == "given" else "_learned"
        print(
            f"{label:8s} wall {result.wall_s:7.2f} s  bound {strict:7.2f} s  (naive {naive:6.2f} s)  "
            f"wall/bound {result.wall_s / strict:.3f}  429s {result.n429}  retries {result.retries}  "
            f"errors {result.errors}  latency {latency * 1000:.0f} ms",
            flush=True,
        )
        fields |= {
            f"wall_s{suffix}": round(result.wall_s, 2),
            f"bound_s{suffix}": round(strict, 2),
            f"naive_bound_s{suffix}": round(naive, 2),
            f"wall_over_bound{suffix}": round(result.wall_s / strict, 3),
            f"n429{suffix}": result.n429,
            f"errors{suffix}": result.errors,
        }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
