"""What one ask costs between a worker and the coordinator: a Ray actor call against a socket frame.

Both carry the same frames (`runner.cluster.messages`): a worker asks for a lease (`Acquire`) and
the coordinator answers (`Leased`), ``--asks`` times, ``--concurrency`` at once, with nothing else
to do, so the figure is the transport's. Ray: a worker actor awaits `RunActor`-style calls on an
async actor of a local cluster (`ray.init(num_cpus=2)`); CPU is both actor processes' (from
``/proc``). Socket (the baseline, side by side): the same asks over `runner.cluster.channel`'s Unix
socket transport in one process. Needs the ``ray`` extra.

Usage: ``python bench/ray_calls.py [--asks 5000 --concurrency 100]``. The last line is
``ray_us_per_ask=… socket_us_per_ask=… ratio=… ray_asks_per_s=…``.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import functools  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable  # noqa: E402

import anyio  # noqa: E402

from runner.cluster.channel import SocketChannel, serve_connection  # noqa: E402
from runner.cluster.messages import Acquire, Frame, Hello, Leased, Reply, Request, decode, encode  # noqa: E402


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Answering:
    """A coordinator that only grants leases (a `Handler`)."""

    def receive(self, worker: int, body: Request) -> Reply | Awaitable[Reply] | None:
        return Leased(1)

    def worker_gone(self, worker: int) -> None:
        pass


class EchoActor:
    """The run actor's `ask`, with the coordinator's answer made at once."""

    async def ask(self, worker: int, data: bytes) -> bytes:
        frame = decode(data)
        return encode(Frame(frame.id, Leased(1)))

    def pid(self) -> int:
        return os.getpid()


class AskingActor:
    """A worker actor asking ``n`` times, ``concurrency`` at once, as `RayChannel.ask` does."""

    def pid(self) -> int:
        return os.getpid()

    async def run(self, echo: object, n: int, concurrency: int) -> None:
        import asyncio

        frame = encode(Frame(1, Acquire("sim", 1000)))
        left = n

        async def asker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                decode(await echo.ask.remote(0, frame))  # type: ignore[attr-defined]

        await asyncio.gather(*(asker() for _ in range(concurrency)))


def over_ray(n: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs per ask over both actor processes, asks per second)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        echo = ray.remote(num_cpus=0, max_concurrency=1000)(EchoActor).remote()
        asking = ray.remote(num_cpus=0)(AskingActor).remote()
        pids = ray.get([echo.pid.remote(), asking.pid.remote()])
        ray.get(asking.run.remote(echo, 200, concurrency))  # warm up
        cpu0, t0 = sum(cpu_s(p) for p in pids), time.perf_counter()
        ray.get(asking.run.remote(echo, n, concurrency))
        wall, cpu = time.perf_counter() - t0, sum(cpu_s(p) for p in pids) - cpu0
    finally:
        ray.shutdown()
    return cpu / n * 1e6, n / wall


async def over_socket(n: int, concurrency: int) -> float:
    """CPU µs per ask over the Unix socket transport, both ends in this process."""
    with tempfile.TemporaryDirectory() as folder:
        address = os.path.join(folder, "c.sock")
        listener = await anyio.create_unix_listener(address)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, functools.partial(serve_connection, Answering()))
            channel = SocketChannel(await anyio.connect_unix(address))
            tg.start_soon(channel.run)
            await channel.ask(Hello(0))
            left = n

            async def asker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await channel.ask(Acquire("sim", 1000))

            cpu0 = time.process_time()
            async with anyio.create_task_group() as askers:
                for _ in range(concurrency):
                    askers.start_soon(asker)
            cpu = time.process_time() - cpu0
            tg.cancel_scope.cancel()
    return cpu / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    print(f"# {args.asks} asks, {args.concurrency} at once, load {os.getloadavg()[0]:.1f}", flush=True)
    socket_us = anyio.run(over_socket, args.asks, args.concurrency)
    print(f"socket: {socket_us:.1f} us of CPU an ask (both ends)", flush=True)
    ray_us, rate = over_ray(args.asks, args.concurrency)
    print(f"ray: {ray_us:.1f} us of CPU an ask (both actors), {rate:.0f} asks/s", flush=True)
    print(
        f"ray_us_per_ask={ray_us:.1f} socket_us_per_ask={socket_us:.1f} ratio={ray_us / socket_us:.1f} "
        f"ray_asks_per_s={rate:.0f} asks={args.asks} concurrency={args.concurrency} load={os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
