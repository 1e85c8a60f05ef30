"""Turning a `Generation` into paced pieces, and writing SSE events with transport quirks.

A piece is what one chunk carries: a kind (``reasoning``, ``content`` or ``hidden`` thinking
time), its text, and the tokens it bills. Text is decoded from token slices with an incremental
UTF-8 decoder, so any text streams exactly, whatever the chunk size.
"""

from __future__ import annotations

import asyncio
import codecs
import random
import time
from collections.abc import Awaitable, Callable, Iterator

import msgspec
from aiohttp import web

from anytime_sim.call import Call
from anytime_sim.pacing import Plan
from anytime_sim.trace import Generation


class Piece(msgspec.Struct, frozen=True):
    kind: str  # "reasoning" | "content" | "hidden"
    text: str
    billed: int


DecodeBytes = Callable[[list[int]], bytes]
Emit = Callable[[Piece], Awaitable[None]]


def _slices(tokens: list[int], chunk: int, decode_bytes: DecodeBytes) -> Iterator[tuple[str, int]]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = 0
    for start in range(0, len(tokens), chunk):
        part = tokens[start : start + chunk]
        text = decoder.decode(decode_bytes(part), final=start + chunk >= len(tokens))
        pending += len(part)
        if text:
            yield text, pending
            pending = 0
    if pending:
        yield "", pending


def pieces(
    generation: Generation, p: Plan, chunk_tokens: int, reasoning: str, decode_bytes: DecodeBytes
) -> Iterator[Piece]:
    """The pieces of a response. ``reasoning`` is how it is shown: raw, summary or hidden."""
    if p.reasoning_tokens:
        if reasoning == "hidden":
            yield Piece("hidden", "", p.reasoning_tokens)
        elif reasoning == "summary" and generation.reasoning:
            shown = generation.summary[: len(generation.summary) * p.reasoning_tokens // len(generation.reasoning)]
            parts = list(_slices(shown, chunk_tokens, decode_bytes))
            billed_left = p.reasoning_tokens
            for i, (text, _) in enumerate(parts):
                share = billed_left if i == len(parts) - 1 else p.reasoning_tokens // max(len(parts), 1)
                billed_left -= share
                yield Piece("reasoning", text, share)
            if not parts:
                yield Piece("hidden", "", p.reasoning_tokens)
        else:
            for text, n in _slices(generation.reasoning[: p.reasoning_tokens], chunk_tokens, decode_bytes):
                yield Piece("reasoning", text, n)
    for text, n in _slices(generation.content[: p.content_tokens], chunk_tokens, decode_bytes):
        yield Piece("content", text, n)


def call_pieces(call: Call, reasoning: str, *, whole: bool = False) -> Iterator[Piece]:
    """The pieces of a call's response: streamed at the configured chunk size, or ``whole`` (one
    piece per kind) for a non-streamed body."""
    chunk = 1 << 30 if whole else call.sim.config.chunk_tokens
    return pieces(call.generation, call.plan, chunk, reasoning, call.sim.logic.encoding.decode_bytes)


class EventWriter:
    """Writes SSE events to a prepared response, applying transport modes."""

    def __init__(
        self,
        response: web.StreamResponse,
        modes: frozenset[str],
        rng: random.Random,
        ping: str = "keep-alive",
        *,
        keepalive_s: float | None = None,
        keepalive: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.response = response
        self.keepalive_s = keepalive_s
        self._keepalive = keepalive
        self.sep = b"\r\n" if "crlf" in modes else b"\n"
        self.split = "split" in modes
        self.comments = "comments" in modes
        self.rng = rng
        self.ping = ping
        # while `batch` is on, events that are due together leave in one write (a loaded
        # simulator would otherwise spend its time in one syscall per chunk)
        self.batch = False
        self._pending: list[bytes] = []

    def _comment(self) -> bytes:
        if self.ping == "ping":
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            return b": ping - " + stamp.encode() + b".000000+00:00" + self.sep + self.sep
        return b": keep-alive" + self.sep + self.sep

    async def event(self, data: bytes, name: str | None = None) -> None:
        block = (b"event: " + name.encode() + self.sep if name else b"") + b"data: " + data + self.sep + self.sep
        if self.comments and self.rng.random() < 0.3:
            block = self._comment() + block
        await self.raw(block)

    async def raw(self, block: bytes) -> None:
        if self.batch and not self.split:
            self._pending.append(block)
            if len(self._pending) >= 32:
                await self.flush()
            return
        await self.flush()
        if not self.split or len(block) < 2:
            await self.response.write(block)
            return
        cuts = sorted(self.rng.sample(range(1, len(block)), min(3, len(block) - 1)))
        for a, b in zip([0, *cuts], [*cuts, len(block)], strict=True):
            await self.response.write(block[a:b])
            # yield so each piece leaves in its own write instead of being coalesced
            await asyncio.sleep(0)

    @property
    def pending(self) -> int:
        """Events held in the batch, not yet written."""
        return len(self._pending)

    async def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            await self.response.write(data)

    async def comment(self) -> None:
        await self.raw(self._comment())

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, writing a keep-alive every `keepalive_s` meanwhile (if it has one)."""
        every = self.keepalive_s
        if not every:
            await asyncio.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > every:
            await asyncio.sleep(every)
            await (self._keepalive() if self._keepalive is not None else self.comment())
            await self.flush()  # a keep-alive held in the batch would keep nothing alive
        await asyncio.sleep(max(0.0, left))


MID_STREAM = ("drop", "malformed", "stall", "error_in_stream", "trickle")


async def drive(
    call: Call,
    request: web.Request,
    writer: EventWriter,
    items: list[Piece],
    emit: Emit,
    emit_error: Callable[[], Awaitable[None]],
    emit_malformed: Callable[[], Awaitable[None]],
) -> bool:
    """Send the pieces at the model's pace, injecting the call's mid-stream fault.

    Returns whether the stream ran to its end (False: a fault cut it; the caller sends nothing more).
    """
    strike = int(len(items) * call.fault.at) if call.fault.kind in MID_STREAM else -1
    done = 0
    gap = 0.0  # once a trickle has begun: the wait before each chunk
    owed: list[Piece] = []  # written into the batch, not yet onto the socket

    def settle() -> None:
        for piece in owed:
            call.served(piece.kind, piece.billed)
        owed.clear()

    writer.batch = True
    for i, piece in enumerate(items):
        if call.interrupted or i == strike:
            await writer.flush()
            settle()
            writer.batch = False
            # interrupted: another request took the model (llama.cpp's default); the stream just stops
            if call.interrupted or not await _strike(call, request, emit_error, emit_malformed):
                return False
            gap = call.fault.stall_s if call.fault.kind == "trickle" else 0.0
            writer.batch = not gap
        done += piece.billed
        delay = gap or call.pacer.delay(done)
        if delay > 0.001:
            await writer.flush()
            settle()
            await writer.pause(delay)
        call.output_started()  # before the first piece leaves, so no client can see it first
        await emit(piece)
        owed.append(piece)
        if not writer.pending:
            settle()
    writer.batch = False
    await writer.flush()
    settle()
    return True


async def _strike(
    call: Call,
    request: web.Request,
    emit_error: Callable[[], Awaitable[None]],
    emit_malformed: Callable[[], Awaitable[None]],
) -> bool:
    """Inject the call's mid-stream fault; returns whether the stream goes on (after a stall, and
    through a trickle, it does)."""
    kind = call.fault.kind
    call.tally.fault(kind)
    if kind == "drop":
        # cut the connection with the body unfinished: the client sees a broken stream
        if request.transport is not None:
            request.transport.abort()
        return False
    if kind == "malformed":
        await emit_malformed()
        return False
    if kind == "error_in_stream":
        await emit_error()
        return False
    if kind == "stall":
        await asyncio.sleep(call.fault.stall_s)
    return True
