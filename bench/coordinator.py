"""What one call costs the coordinator of worker processes: CPU per call and frames per call.

A worker's call talks to the coordinator as `runner.cluster.remote` makes it: a lease from the
key's limiter (`LeasedLimiter.acquire`), a spend reservation (`RemoteSpend.reserve`), its intent
made durable (`WorkerLedger.append_durable`: the coordinator appends and fsyncs it, then answers),
and at its end the attempt's record with its spend settled, the lease settled and a success told.
Here the calls are made without any HTTP (the provider's part is not the coordinator's), by many
tasks at once, over a real Unix socket to a real `Coordinator` with a real ledger in a temporary
folder. Both ends run in this one process, so the CPU per call is an upper bound of the
coordinator's share. The baseline, side by side: the same calls against this process's own
`LaneLimiter`, `SpendGuard` and `LedgerWriter`, as one process runs them (no workers).

Usage: ``python bench/coordinator.py [--calls 20000 --concurrency 500 --repeats 3]``. The last line
is ``coordinator_us_per_call=… single_us_per_call=… frames_per_call=… ratio=…`` (medians).
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import anyio  # noqa: E402

from runner.cluster.channel import SocketChannel, serve_connection  # noqa: E402
from runner.cluster.coordinator import Coordinator  # noqa: E402
from runner.cluster.messages import Hello  # noqa: E402
from runner.cluster.remote import LeasedLimiter, RemoteSpend, WorkerLedger  # noqa: E402
from runner.config.manifest import load_manifest  # noqa: E402
from runner.engine.lane import Lane  # noqa: E402
from runner.engine.lanes import open_lanes  # noqa: E402
from runner.engine.limits import Capacity, Limiter  # noqa: E402
from runner.engine.spend import SpendGate, SpendNeed  # noqa: E402
from runner.engine.sweep import RunWiring, Sweep, SweepOptions  # noqa: E402
from runner.ledger.records import Attempt, InFlight  # noqa: E402
from runner.ledger.writer import BatchWriter, open_ledger  # noqa: E402

DATA = Path(_HERE).parent / "data"

MANIFEST = """
[run]
name = "bench"
ledger_dir = "ledgers"

[providers.sim]
kind = "sim"
max_concurrency = {concurrency}

[models.r]
provider = "sim"
model = "sim-reasoner-large"

[datasets.aime]
kind = "aime"
path = "{data}/aime_2024.jsonl"

[methods.cot]
kind = "cot"
"""


def intent(i: int) -> InFlight:
    return InFlight(
        call_id=f"c{i}", job_id=f"j{i}", kind="trace", provider="sim", model="r", attempt=1, status="interrupted",
        input_tokens_counted=120, priced_from="counted", usd=0.00001, started_at=time.time(), max_output_tokens=1024,
    )  # fmt: skip


def attempt(i: int) -> Attempt:
    return Attempt(
        call_id=f"c{i}", job_id=f"j{i}", kind="trace", provider="sim", model="r", attempt=1, status="ok",
        input_tokens=120, output_tokens=512, priced_from="reported", usd=0.0002, started_at=time.time(),
        latency_s=4.0, max_output_tokens=1024,
    )  # fmt: skip


async def one_call(i: int, limiter: Limiter, spend: SpendGate, ledger: BatchWriter) -> None:
    """A call's admission, intent and settlement, as `runner.engine.lane.Lane` makes them."""
    lease: Capacity = await limiter.acquire(1144)
    reserved = await spend.reserve(SpendNeed("sim", 0.0005))
    assert reserved is not None
    await ledger.append_durable(intent(i))
    spend.settle("sim", reserved, 0.0002)
    ledger.append(attempt(i))
    lease.settle(632)
    limiter.on_success()


async def calls(n: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> float:
    """CPU seconds of this process for ``n`` calls, ``concurrency`` at a time."""
    send, receive = anyio.create_memory_object_stream[int](n)
    for i in range(n):
        send.send_nowait(i)
    send.close()

    async def task() -> None:
        async for i in receive.clone():
            await call(i)

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(task)
    end = resource.getrusage(resource.RUSAGE_SELF)
    return (end.ru_utime - cpu.ru_utime) + (end.ru_stime - cpu.ru_stime)


async def with_workers(sweep: Sweep, n: int, concurrency: int, folder: Path) -> tuple[float, int]:
    """The calls through a worker's proxies and a Unix socket to a `Coordinator`; CPU, frames."""
    async with open_ledger(folder / "coordinated") as writer:
        coordinator = Coordinator(sweep, RunWiring(writer, None, None, set()), workers=1)
        frames = 0
        receive = coordinator.receive

        def counted(worker: int, body: object) -> Awaitable[object] | None:
            nonlocal frames
            frames += 1
            return receive(worker, body)  # type: ignore[arg-type]

        coordinator.receive = counted  # type: ignore[method-assign,assignment]
        address = str(folder / "c.sock")
        listener = await anyio.create_unix_listener(address)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, functools.partial(serve_connection, coordinator))
            stream = await anyio.connect_unix(address)
            channel = SocketChannel(stream)
            tg.start_soon(channel.run)
            await channel.ask(Hello(0))
            ledger = WorkerLedger(channel, 0)
            async with anyio.create_task_group() as flushing:  # as a worker does: flushed, then stopped
                flushing.start_soon(ledger.run_flusher)
                limiter, spend = LeasedLimiter(channel, "sim"), RemoteSpend(channel, ledger)
                cpu = await calls(n, concurrency, lambda i: one_call(i, limiter, spend, ledger))
                await ledger.flush()
                flushing.cancel_scope.cancel()
            await channel.drain()
            tg.cancel_scope.cancel()
        return cpu, frames - 1


async def single(lanes: dict[str, Lane], sweep: Sweep, n: int, concurrency: int, folder: Path) -> float:
    """The same calls on this process's own limiter, spend guard and ledger (no workers)."""
    async with open_ledger(folder / "single") as writer:
        limiter = lanes["sim"].limiter
        return await calls(n, concurrency, lambda i: one_call(i, limiter, sweep.spend, writer))


async def measure(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.toml"
        path.write_text(MANIFEST.format(concurrency=args.concurrency, data=DATA))
        sweep = Sweep(load_manifest(path), SweepOptions())
        async with contextlib.AsyncExitStack() as stack:
            # the lanes' limiters are the coordinator's; the lanes themselves never call here
            unused = await stack.enter_async_context(open_ledger(Path(folder) / "unused"))
            sweep.lanes = await open_lanes(
                sweep.loaded, stack, sim_url="http://127.0.0.1:9", keys={"sim": None}, ledger=unused, spend=sweep.spend
            )
            cpu_w, frames = await with_workers(sweep, args.calls, args.concurrency, Path(folder))
            cpu_s = await single(sweep.lanes, sweep, args.calls, args.concurrency, Path(folder))
    return {
        "coordinator_us_per_call": cpu_w / args.calls * 1e6,
        "single_us_per_call": cpu_s / args.calls * 1e6,
        "frames_per_call": frames / args.calls,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {args.calls} calls, {args.concurrency} at once, {args.repeats} runs, load {os.getloadavg()[0]:.1f}")
    runs = []
    for _ in range(args.repeats):
        r = anyio.run(measure, args)
        runs.append(r)
        print(
            f"coordinated {r['coordinator_us_per_call']:.1f} us/call ({r['frames_per_call']:.2f} frames/call), "
            f"single process {r['single_us_per_call']:.1f} us/call",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratio = med["coordinator_us_per_call"] / med["single_us_per_call"]
    print(
        f"coordinator_us_per_call={med['coordinator_us_per_call']:.1f} "
        f"single_us_per_call={med['single_us_per_call']:.1f} "
        f"frames_per_call={med['frames_per_call']:.2f} ratio={ratio:.2f} calls={args.calls} "
        f"concurrency={args.concurrency} load={os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
