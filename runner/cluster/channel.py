"""The transport between workers and the coordinator: two interfaces, and their Unix-socket kind.

A worker talks through a `Channel` (ask and wait for the answer, or tell); the coordinator is a
`Handler` (it takes each message as it arrives, in order, and hands back its answer to an ask, or
an awaitable one). Nothing else of the cluster knows how frames travel. Here they travel over a
byte stream: a Unix socket between the processes of one machine (`runner.cluster.processes`), TCP
between Ray actors (`runner.cluster.ray_backend`: Ray places and supervises them, but an actor call
costs ~90 times a frame's CPU, `bench/ray_calls.py`); over TCP the worker's `Hello` carries the
run's secret token.

On a socket a frame is its length (4 bytes, big-endian) and its msgpack body. Each side has one
sender task, so a tell never awaits (it can run in a ``finally`` that must not) and frames leave
in the order they were made. A connection that ends mid-frame drops that frame, as a torn ledger
line is dropped: what a killed worker sent whole is kept, the rest never happened.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from anyio.abc import ByteReceiveStream, ByteStream

from runner.cluster.messages import Frame, Hello, Reply, Request, decode, encode

_LENGTH = struct.Struct(">I")
READ_BYTES = 1 << 16


class CoordinatorLost(RuntimeError):
    """The coordinator's end of the channel went away: the worker stops (its run is over)."""


class Channel(Protocol):
    """A worker's end: ask (and wait for the answer) or tell (no answer, never awaits)."""

    async def ask(self, body: Request, orphan: Callable[[Reply], None] | None = None) -> Reply:
        """The coordinator's answer; ``orphan`` gets it instead if the asker was cancelled meanwhile
        (so that capacity granted to nobody goes back)."""
        ...

    def tell(self, body: Request) -> None: ...


class Handler(Protocol):
    """The coordinator's end: each message in the order a worker sent it."""

    def receive(self, worker: int, body: Request) -> Reply | Awaitable[Reply] | None:
        """Act on a message now; for an ask, its answer, or an awaitable that gives it."""
        ...

    def worker_gone(self, worker: int) -> None:
        """The worker's channel closed (it said `Bye`, or it died: the handler tells which)."""
        ...


def frame_bytes(frame: Frame) -> bytes:
    body = encode(frame)
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Whole frames off a stream, as many as each read holds (one read of up to `READ_BYTES`)."""

    def __init__(self, stream: ByteReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def frames(self) -> list[Frame] | None:
        """The whole frames of the next read(s); None once the connection ended (a frame cut off
        mid-way by the end is dropped)."""
        while True:
            frames = self._whole_frames()
            if frames:
                return frames
            try:
                self._buffer += await self._stream.receive(READ_BYTES)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return None

    def _whole_frames(self) -> list[Frame]:
        frames: list[Frame] = []
        position, size = 0, len(self._buffer)
        with memoryview(self._buffer) as view:
            while size - position >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(view, position)
                end = position + _LENGTH.size + length
                if end > size:
                    break
                frames.append(decode(view[position + _LENGTH.size : end]))
                position = end
        del self._buffer[:position]
        return frames


class _Sender:
    """One connection's outgoing frames, written in order by one task."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.out = bytearray()
        self.wake = anyio.Event()
        self.sent = anyio.Event()

    def put(self, frame: Frame) -> None:
        self.out += frame_bytes(frame)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = anyio.Event()
            while self.out:
                data, self.out = bytes(self.out), bytearray()
                await self.stream.send(data)
            self.sent.set()
            self.sent = anyio.Event()

    async def drain(self) -> None:
        while self.out:
            await self.sent.wait()


@dataclass
class _Pending:
    orphan: Callable[[Reply], None] | None
    event: anyio.Event = field(default_factory=anyio.Event)
    reply: Reply | None = None
    abandoned: bool = False


class SocketChannel:
    """A worker's `Channel` over a connected stream; `run` it for as long as the worker lives."""

    def __init__(self, stream: ByteStream) -> None:
        self._sender = _Sender(stream)
        self._reader = FrameReader(stream)
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._lost = False

    def tell(self, body: Request) -> None:
        self._sender.put(Frame(0, body))

    async def ask(self, body: Request, orphan: Callable[[Reply], None] | None = None) -> Reply:
        if self._lost:
            raise CoordinatorLost("the coordinator is gone")
        ask_id, self._next_id = self._next_id, self._next_id + 1
        pending = self._pending[ask_id] = _Pending(orphan)
        self._sender.put(Frame(ask_id, body))
        try:
            await pending.event.wait()
        except BaseException:
            pending.abandoned = True
            raise
        if pending.reply is None:
            raise CoordinatorLost("the coordinator went away before it answered")
        return pending.reply

    async def run(self) -> None:
        """Send and receive until the coordinator closes the connection (then raise CoordinatorLost)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sender.run)
            while (frames := await self._reader.frames()) is not None:
                for frame in frames:
                    self._answered(frame)
            self._lost = True
            for pending in self._pending.values():
                pending.event.set()
            raise CoordinatorLost("the coordinator closed the connection")

    def _answered(self, frame: Frame) -> None:
        pending = self._pending.pop(frame.id, None)
        if pending is None or not isinstance(frame.body, Reply):
            return
        if pending.abandoned:
            if pending.orphan is not None:
                pending.orphan(frame.body)
            return
        pending.reply = frame.body
        pending.event.set()

    async def drain(self) -> None:
        """Wait until every frame told or asked so far has been written to the socket."""
        await self._sender.drain()


async def serve_connection(handler: Handler, stream: ByteStream, token: str = "") -> None:
    """The coordinator's side of one worker's connection, from its `Hello` (which must carry
    ``token``) until it closes."""
    sender = _Sender(stream)
    reader = FrameReader(stream)
    frames = await reader.frames()
    if not frames or not isinstance(frames[0].body, Hello) or not hmac.compare_digest(frames[0].body.token, token):
        await stream.aclose()
        return
    worker = frames[0].body.worker

    async def answer(ask_id: int, pending: Awaitable[Reply]) -> None:
        sender.put(Frame(ask_id, await pending))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            while frames is not None:
                for frame in frames:
                    if not isinstance(frame.body, Request):
                        continue
                    pending = handler.receive(worker, frame.body)
                    if not frame.id or pending is None:
                        continue
                    if isinstance(pending, Reply):  # answered at once: no task for it
                        sender.put(Frame(frame.id, pending))
                    else:
                        tg.start_soon(answer, frame.id, pending)
                frames = await reader.frames()
            tg.cancel_scope.cancel()
    finally:
        handler.worker_gone(worker)
        with anyio.CancelScope(shield=True):
            await stream.aclose()


__all__ = ["Channel", "CoordinatorLost", "FrameReader", "Handler", "SocketChannel", "frame_bytes", "serve_connection"]
