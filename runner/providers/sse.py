"""An incremental, bytes-level Server-Sent Events parser.

Bytes go in as they arrive from the socket, in any split (mid-line, mid-event, inside a
multi-byte UTF-8 character); complete events come out as `SSEEvent`s whose ``data`` is still
bytes (the adapters hand it to msgspec, which decodes JSON straight from bytes). Lines end in
``\\n``, ``\\r`` or ``\\r\\n``; lines starting with ``:`` are comments (keep-alives); several
``data:`` lines in one event are joined with ``\\n``; ``id:`` and ``retry:`` are kept on the parser.
The rules are those of the WHATWG EventSource spec, which the OpenAI and Anthropic SDKs follow.

Speed matters (thousands of concurrent streams share one core, one event per token), so a read
is split into lines once, and the common event, one ``data: …`` line and a blank line, costs two
turns of one loop, a slice and one event. Every other line (fields, comments, a second data line)
goes to `_field`. An unfinished line is kept as a list of reads and joined only once its end
arrives, so a large event split into many reads costs linear time.
"""

from __future__ import annotations

import msgspec

_BOM = b"\xef\xbb\xbf"


class SSEEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event. ``event`` is ``"message"`` when the block had no ``event:`` line."""

    event: str
    data: bytes


class SSEParser:
    """Feed bytes, get events. One parser per stream; not thread-safe.

    Attributes:
        last_event_id: the last ``id:`` value seen (unused by the providers, kept per spec).
        retry_ms: the last valid ``retry:`` value.
    """

    __slots__ = ("_data", "_event", "_line", "_skip_lf", "_started", "last_event_id", "retry_ms")

    def __init__(self) -> None:
        self._line: list[bytes] = []  # an unfinished line, as read (line ends normalised to \n)
        self._data: bytes | bytearray | None = None  # the event's data so far (None: no data line yet)
        self._event = "message"
        self._skip_lf = False  # the previous read ended in \r: a leading \n belongs to it
        self._started = False
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    @property
    def pending(self) -> bool:
        """Whether a partial line or a partial event is buffered (a cut here is mid-event)."""
        return bool(self._line) or self._data is not None or self._event != "message"

    @property
    def received_any(self) -> bool:
        """Whether any byte of the body has arrived."""
        return self._started or bool(self._line)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one read from the socket and return the events it completed."""
        if not self._started or self._skip_lf:
            if not chunk:
                return []  # an empty read must not clear the pending \r's line end
            chunk = self._prepare(chunk)
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._line:
            if b"\n" not in chunk:
                self._line.append(chunk)
                return []
            self._line.append(chunk)
            chunk = b"".join(self._line)
            self._line.clear()
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._line.append(tail)
        out: list[SSEEvent] = []
        data, event = self._data, self._event
        for line in lines:
            if not line:  # the blank line: dispatch
                if data is not None:
                    out.append(SSEEvent(event, data if data.__class__ is bytes else bytes(data)))
                    data = None
                event = "message"
            elif data is None and line[:6] == b"data: ":
                data = line[6:]
            else:
                data, event = self._field(line, data, event)
        self._data, self._event = data, event
        return out

    def _prepare(self, chunk: bytes) -> bytes:
        """Drop a leading ``\\n`` that ends the previous read's ``\\r``, and the body's BOM."""
        if self._skip_lf:
            self._skip_lf = False
            chunk = chunk[1:] if chunk[:1] == b"\n" else chunk
        if not self._started:
            head = b"".join(self._line) + chunk
            self._line.clear()
            if len(head) < 3 and _BOM.startswith(head):
                self._line.append(head)  # too short to tell whether a BOM starts the stream
                return b""
            self._started = True
            chunk = head[3:] if head.startswith(_BOM) else head
        return chunk

    def _field(self, line: bytes, data: bytes | bytearray | None, event: str) -> tuple[bytes | bytearray | None, str]:
        """Any line but the first ``data: `` of an event; returns the event's data and name."""
        if line[0] == 0x3A:  # ":" starts a comment
            return data, event
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if data is None:
                return value, event
            # a second data line: grow a bytearray, so that many lines cost linear time
            joined = data if isinstance(data, bytearray) else bytearray(data)
            joined += b"\n"
            joined += value
            return joined, event
        if name == b"event":
            return data, value.decode("utf-8", "replace") if value else "message"
        if name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        # any other field name is ignored, as the spec says
        return data, event


def parse_all(payload: bytes) -> list[SSEEvent]:
    """Parse a whole stream at once (tests, recorded fixtures); a trailing partial event is dropped."""
    return SSEParser().feed(payload)
