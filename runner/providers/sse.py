"""An incremental, bytes-level Server-Sent Events parser.

Bytes go in as they arrive from the socket, in any split (mid-line, mid-event, inside a
multi-byte UTF-8 character); complete events come out as ``(event, data)`` tuples, ``data`` still
bytes (the adapters hand them to msgspec, which decodes JSON straight from bytes). Lines end in
``\\n``, ``\\r`` or ``\\r\\n``; lines starting with ``:`` are comments (keep-alives); several
``data:`` lines in one event are joined with ``\\n``; ``id:`` and ``retry:`` are kept on the parser.
The rules are those of the WHATWG EventSource spec, which the OpenAI and Anthropic SDKs follow.

Speed matters (thousands of concurrent streams share one core, one event per token), so the
parser works on whole blocks: a read is split once at blank lines (``\\n\\n``), and a block that is
a single ``data: …`` line (nearly every event of every provider) becomes an event with one slice.
Any other block (``event:`` lines, comments, several data lines, fields) is read line by line.
An unfinished block is kept as a list of reads and joined only once its blank line arrives, so a
large event split into many reads costs linear time.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One dispatched event. ``event`` is ``"message"`` when the block had no ``event:`` line."""

    event: str
    data: bytes


class SSEParser:
    """Feed bytes, get events. One parser per stream; not thread-safe.

    Attributes:
        last_event_id: the last ``id:`` value seen (unused by the providers, kept per spec).
        retry_ms: the last valid ``retry:`` value.
    """

    __slots__ = ("_parts", "_skip_lf", "_started", "last_event_id", "retry_ms")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # the unfinished block, as read (line ends normalised to \n)
        self._skip_lf = False  # the previous read ended in \r: a leading \n belongs to it
        self._started = False
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    @property
    def pending(self) -> bool:
        """Whether a partial line or a partial event is buffered (a cut here is mid-event)."""
        return any(part.strip(b"\n") for part in self._parts)

    @property
    def received_any(self) -> bool:
        """Whether any byte of the body has arrived."""
        return self._started or bool(self._parts)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one read from the socket and return the events it completed."""
        if not self._started or self._skip_lf:
            if not chunk:
                return []  # an empty read must not clear the pending \r's line end
            chunk = self._prepare(chunk)
        if not chunk:
            return []
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if parts:
            if b"\n\n" not in chunk and not (chunk[:1] == b"\n" and parts[-1].endswith(b"\n")):
                parts.append(chunk)
                return []
            parts.append(chunk)
            chunk = b"".join(parts)
            parts.clear()
        blocks = chunk.split(b"\n\n")
        tail = blocks.pop()
        if tail:
            parts.append(tail)
        out: list[SSEEvent] = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                out.append(SSEEvent("message", block[6:]))
            elif block:
                self._block(block, out)
        return out

    def _prepare(self, chunk: bytes) -> bytes:
        """Drop a leading ``\\n`` that ends the previous read's ``\\r``, and the body's BOM."""
        if self._skip_lf:
            self._skip_lf = False
            chunk = chunk[1:] if chunk[:1] == b"\n" else chunk
        if not self._started:
            head = b"".join(self._parts) + chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._parts = [head] if head else []  # too short to tell whether a BOM starts it
                return b""
            self._started = True
            self._parts = []
            chunk = head[3:] if head.startswith(_BOM) else head
        return chunk

    def _block(self, block: bytes, out: list[SSEEvent]) -> None:
        """One whole block, line by line: fields, comments, multi-line data."""
        data: list[bytes] = []
        event = b""
        for line in block.split(b"\n"):
            if not line:
                if data:  # a blank line inside the block: only a lone \n\n can make one (see feed)
                    out.append(_event(event, data))
                data, event = [], b""
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] != 0x3A:  # ":" starts a comment
                event = self._field(line, data, event)
        if data:
            out.append(_event(event, data))

    def _field(self, line: bytes, data: list[bytes], event: bytes) -> bytes:
        """Apply one non-data field line; returns the block's event name."""
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            return value
        if name == b"data":  # "data" with no colon: an empty data line
            data.append(value)
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        # any other field name is ignored, as the spec says
        return event


def _event(name: bytes, data: list[bytes]) -> SSEEvent:
    return SSEEvent(name.decode("utf-8", "replace") if name else "message", b"\n".join(data))


def parse_all(payload: bytes) -> list[SSEEvent]:
    """Parse a whole stream at once (tests, recorded fixtures); a trailing partial event is dropped."""
    return SSEParser().feed(payload)
