"""An incremental, bytes-level Server-Sent Events parser.

Bytes go in as they arrive from the socket, in any split (mid-line, mid-event, inside a
multi-byte UTF-8 character); complete events come out as ``(event, data)`` tuples. Lines end in
``\\n``, ``\\r`` or ``\\r\\n``; lines starting with ``:`` are comments (keep-alives); several
``data:`` lines in one event are joined with ``\\n``; ``id:`` and ``retry:`` are kept on the parser.
The rules are those of the WHATWG EventSource spec, which the OpenAI and Anthropic SDKs follow.

Speed matters (thousands of concurrent streams share one core), so the common case, a read
holding whole ``data: {...}\\n\\n`` events with ``\\n`` line ends, costs one ``split`` and a few
slices per event. Text is decoded only once a line is complete: a line terminator is ASCII and
can never fall inside a multi-byte character, so no incremental decoder is needed.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One dispatched event. ``event`` is ``"message"`` when the block had no ``event:`` line."""

    event: str
    data: str


class SSEParser:
    """Feed bytes, get events. One parser per stream; not thread-safe.

    Attributes:
        last_event_id: the last ``id:`` value seen (unused by the providers, kept per spec).
        retry_ms: the last valid ``retry:`` value.
    """

    __slots__ = ("_buf", "_data", "_event", "_has_data", "_skip_lf", "_started", "last_event_id", "retry_ms")

    def __init__(self) -> None:
        self._buf = b""  # an incomplete line, line ends already normalised to \n
        self._data: list[bytes] = []
        self._event = b""
        self._has_data = False
        self._skip_lf = False  # the previous read ended in \r: a leading \n belongs to it
        self._started = False
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    @property
    def pending(self) -> bool:
        """Whether a partial line or a partial event is buffered (a cut here is mid-event)."""
        return bool(self._buf) or self._has_data or bool(self._event)

    @property
    def received_any(self) -> bool:
        """Whether any byte of the body has arrived."""
        return self._started or bool(self._buf)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one read from the socket and return the events it completed."""
        if not chunk:
            return []
        if self._skip_lf:
            chunk = self._after_cr(chunk)
        if not self._started:
            chunk = self._start(chunk)
            if not chunk:
                return []
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._buf += chunk
            return []
        lines = (self._buf + chunk).split(b"\n") if self._buf else chunk.split(b"\n")
        self._buf = lines.pop()
        out: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._has_data:
                    out.append(self._dispatch())
                else:
                    self._event = b""
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
                self._has_data = True
            elif line[0] != 0x3A:  # ":" starts a comment
                self._field(line)
        return out

    def _after_cr(self, chunk: bytes) -> bytes:
        """The read after one that ended in ``\\r``: a leading ``\\n`` belongs to that line end."""
        self._skip_lf = False
        return chunk[1:] if chunk[:1] == b"\n" else chunk

    def _start(self, chunk: bytes) -> bytes:
        """The body's first bytes with a leading BOM removed; b"" while too few have come to tell."""
        if len(self._buf) + len(chunk) < 3 and _BOM.startswith(self._buf + chunk):
            self._buf += chunk  # too short to tell whether a BOM starts the stream
            return b""
        self._started = True
        if self._buf:
            chunk, self._buf = self._buf + chunk, b""
        return chunk[3:] if chunk.startswith(_BOM) else chunk

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value
        elif name == b"data":
            self._data.append(value)
            self._has_data = True
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        # any other field name is ignored, as the spec says

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = self._event.decode("utf-8", "replace") if self._event else "message"
        self._data = []
        self._event = b""
        self._has_data = False
        return SSEEvent(event, data.decode("utf-8", "replace"))


def parse_all(payload: bytes) -> list[SSEEvent]:
    """Parse a whole stream at once (tests, recorded fixtures); a trailing partial event is dropped."""
    return SSEParser().feed(payload)
