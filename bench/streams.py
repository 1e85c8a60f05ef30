"""Thousands of concurrent streams through one process: client CPU per chunk and RSS per stream.

The simulator runs in its own process (``anytime sim --chunk-tokens 4 --time-scale S``), with no
rate limits; each client runs in its own process too, so its CPU time and peak RSS are its own:

- ``lane`` (ours, the default): the scheduler's `runner.engine.lane.Lane` (spend guard, `LaneLimiter`
  admission, `OpenAIChatAdapter` on aiohttp with bytes-level SSE and msgspec, timeouts, an
  `Attempt` record per call into a no-op sink) with the reasoning fed to a `TraceConsumer`
  (budget snapshots at 64/128/256/512 tokens through `runner.tokens.BudgetTokenizer`), as the
  lane hands it on: the text of one socket read at once;
- ``openai`` (the baseline): the official SDK: `AsyncOpenAI` + `asyncio.Semaphore`, connection pool opened to the
  same concurrency, no tokenizing.

(A ``direct`` client that drove the limiter, adapter and consumer by hand was removed: its loop was
a copy of the lane's, which a benchmark must not keep.)

Each of N streams generates 512 reasoning tokens in 4-token chunks. Figures: client CPU seconds
(user + system, the streaming phase only) per streamed text chunk (ours: counted tokens / chunk
size, since the lane feeds a read's text at once; the SDK client counts its chunks); peak RSS above the client's
RSS before the phase, per stream at peak concurrency; errors; the simulator's peak in flight.

Usage: ``python bench/streams.py [--streams 5000 --time-scale 10]``. The last line holds
``streams=``, ``errors=``, ``cpu_ratio_vs_openai=`` (SDK CPU per chunk / ours) and
``rss_kb_per_stream=`` as ``name=value`` pairs.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

MODEL = "sim-reasoner-large"  # streams its reasoning; runs to the 512-token cap
BUDGETS = (64, 128, 256, 512)
PROMPT = "Problem {i}: how many positive divisors does {n} have? Think it through."


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


class Meter:
    """What one client measures about itself."""

    def __init__(self) -> None:
        self.chunks = self.errors = self.done = self.in_flight = self.peak = 0
        self.first_error = ""

    def enter(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"[:200]


async def client_lane(base_url: str, n: int, tokens: int, chunk_tokens: int, m: Meter) -> None:
    """The scheduler's `Lane`: spend guard, limiter, adapter, timeouts, one ledger record per call."""
    import aiohttp
    import anyio

    from runner.engine.consumers import TraceConsumer
    from runner.engine.lane import CallSpec, Lane
    from runner.engine.limits import LaneLimiter
    from runner.engine.retry import RetryPolicy
    from runner.engine.spend import SpendGuard
    from runner.errors import ProviderError
    from runner.ledger.memory import MemorySink
    from runner.ledger.prices import ModelPrice
    from runner.providers.openai_chat import OpenAIChatAdapter
    from runner.tokens.count import count_chat_tokens
    from runner.tokens.encodings import get_encoding
    from runner.types import ChatRequest, Message

    enc = get_encoding("o200k_base")
    price = ModelPrice(input=2.0, output=8.0)

    async def one(lane: Lane, i: int) -> None:
        text = PROMPT.format(i=i, n=1000 + i)
        request = ChatRequest(model=MODEL, messages=(Message("user", text),), max_output_tokens=tokens)
        spec = CallSpec(
            job_id=f"s{i}",
            kind="trace",
            model=MODEL,
            request=request,
            prompt_tokens=count_chat_tokens(enc, request.messages),
            price=price,
        )
        m.enter()
        try:
            result = await lane.call(spec, lambda: TraceConsumer(enc, BUDGETS, "reasoning"))
            consumer = result.consumer
            assert isinstance(consumer, TraceConsumer)
            counted = consumer.output_tokens_counted()[0]
            if len(consumer.cuts) != len(BUDGETS) or counted != tokens:
                raise RuntimeError(f"stream {i}: {counted} tokens, cuts at {sorted(consumer.cuts)}")
            # the lane hands the tokenizer each read's text at once, so the consumer cannot count
            # chunks: the simulator sent one per `chunk_tokens` tokens of this ASCII trace
            m.chunks += -(-counted // chunk_tokens)
            m.done += 1
        except (ProviderError, RuntimeError) as exc:
            m.fail(exc)
        finally:
            m.in_flight -= 1

    connector = aiohttp.TCPConnector(limit=n, limit_per_host=n)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        lane = Lane(
            name="sim",
            adapter=OpenAIChatAdapter(f"{base_url}/v1", "bench-lane", provider="sim"),
            limiter=LaneLimiter(rpm=None, tpm=None, max_concurrency=n),
            policy=RetryPolicy(max_attempts=1),
            session=session,
            ledger=MemorySink(keep=False),
            spend=SpendGuard(None, {}),
            first_token_timeout=300.0,
            idle_timeout=300.0,
            total_timeout=900.0,
        )
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, lane, i)


async def client_openai(base_url: str, n: int, tokens: int, m: Meter) -> None:
    import httpx2 as httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    http = DefaultAsyncHttpxClient(
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        timeout=httpx.Timeout(600.0, connect=60.0),
    )
    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key="bench-openai", max_retries=0, http_client=http)
    sem = asyncio.Semaphore(n)

    async def one(i: int) -> None:
        text = PROMPT.format(i=i, n=1000 + i)
        async with sem:
            m.enter()
            try:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": text}],
                    max_completion_tokens=tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in stream:
                    if chunk.choices:
                        delta = chunk.choices[0].delta
                        if getattr(delta, "reasoning_content", None) or delta.content:
                            m.chunks += 1
                m.done += 1
            except Exception as exc:  # the baseline's failures are only counted
                m.fail(exc)
            finally:
                m.in_flight -= 1

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


def run_client(which: str, base_url: str, n: int, tokens: int, loop: str, chunk_tokens: int = 4) -> dict[str, object]:
    """Run one client in this process on the given event loop; return its own figures."""
    m = Meter()
    uv = loop == "uvloop"
    if which == "lane":
        import anyio

        import runner.engine.lane  # noqa: F401  (the import's cost stays out of the measured phase)
        from runner.engine.collector import tuned_collector
        from runner.tokens.encodings import get_encoding

        get_encoding("o200k_base")  # load the ranks before the measured phase
        with tuned_collector():  # the collector as `anytime run` sets it while it streams
            rss0, cpu0, t0 = rss_kb(), cpu_s(), time.perf_counter()
            anyio.run(client_lane, base_url, n, tokens, chunk_tokens, m, backend_options={"use_uvloop": uv})
            wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    else:
        import openai  # noqa: F401  (the import's cost stays out of the measured phase)

        rss0, cpu0, t0 = rss_kb(), cpu_s(), time.perf_counter()
        factory = None
        if uv:
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as aio:
            aio.run(client_openai(base_url, n, tokens, m))
        wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "client": which,
        "loop": loop,
        "streams": n,
        "done": m.done,
        "errors": m.errors,
        "first_error": m.first_error,
        "chunks": m.chunks,
        "peak_in_flight": m.peak,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_chunk": round(cpu / max(1, m.chunks) * 1e6, 2),
        "rss_before_kb": rss0,
        "peak_rss_kb": peak_kb,
        "rss_kb_per_stream": round((peak_kb - rss0) / max(1, m.peak), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--time-scale", type=float, default=10.0, help="the simulator's (1 = real speed)")
    parser.add_argument("--clients", default="lane,openai", help="any of lane, openai")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of every client; auto: uvloop when installed, as `anytime run` does",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run one client here
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401

            args.loop = "uvloop"
        except ImportError:
            args.loop = "asyncio"
    if args.client:
        result = run_client(args.client, args.base_url, args.streams, args.tokens, args.loop)
        print(json.dumps(result), flush=True)
        return 0

    import aiohttp
    import anyio
    from throughput import SimProcess, sim_stats

    async def stats_of(base_url: str) -> dict[str, object]:
        async with aiohttp.ClientSession() as session:
            return await sim_stats(session, base_url)

    print(
        f"# {args.streams} streams x {args.tokens} tokens, 4-token chunks, time scale {args.time_scale}, "
        f"{args.loop} loop"
    )
    results: dict[str, dict[str, object]] = {}
    for which in args.clients.split(","):
        with SimProcess("--chunk-tokens", "4", "--time-scale", str(args.time_scale)) as sim:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--client",
                    which,
                    "--base-url",
                    sim.base_url,
                    "--streams",
                    str(args.streams),
                    "--tokens",
                    str(args.tokens),
                    "--loop",
                    args.loop,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["sim_peak_in_flight"] = anyio.run(stats_of, sim.base_url)["peak_in_flight"]
        results[which] = r
        print(
            f"{which:7s} done {r['done']}/{r['streams']}  errors {r['errors']}  chunks {r['chunks']}  "
            f"wall {r['wall_s']} s  cpu {r['cpu_s']} s = {r['cpu_us_per_chunk']} us/chunk  "
            f"peak in flight {r['peak_in_flight']} (sim {r['sim_peak_in_flight']})  "
            f"RSS {r['rss_before_kb']} -> {r['peak_rss_kb']} KB = {r['rss_kb_per_stream']} KB/stream"
            + (f"  first error: {r['first_error']}" if r["errors"] else ""),
            flush=True,
        )
    ours = results.get("lane") or {}
    fields: dict[str, object] = {
        "loop": args.loop,
        "streams": args.streams,
        "errors": ours.get("errors"),
        "peak_in_flight": ours.get("peak_in_flight"),
        "cpu_us_per_chunk": ours.get("cpu_us_per_chunk"),
        "rss_kb_per_stream": ours.get("rss_kb_per_stream"),
    }
    if "openai" in results and ours:
        sdk = results["openai"]
        ratio = float(sdk["cpu_us_per_chunk"]) / float(ours["cpu_us_per_chunk"])
        fields["cpu_ratio_vs_openai"] = round(ratio, 2)
        fields |= {
            "ours": "lane",
            "openai_errors": sdk["errors"],
            "openai_cpu_us_per_chunk": sdk["cpu_us_per_chunk"],
            "openai_rss_kb_per_stream": sdk["rss_kb_per_stream"],
        }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
