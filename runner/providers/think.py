"""Split ``<think>…</think>`` reasoning out of a streamed content channel.

Some hosts (Together's DeepSeek-R1, raw llama.cpp templates) put the chain of thought inline
in ``delta.content``. Tags can be cut anywhere between chunks (``"<thi" + "nk>"``), so a suffix
that could still become a tag is held back until the next fragment decides it. Only the first
think block counts: after ``</think>`` everything is answer, even text that mentions the tags.
"""

from __future__ import annotations

_OPEN = "<think>"
_CLOSE = "</think>"


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Feed content fragments; get back ``(is_reasoning, text)`` pieces in stream order."""

    __slots__ = ("_done", "_held", "_inside", "_seen_text")

    def __init__(self) -> None:
        self._inside = False
        self._done = False
        self._held = ""
        self._seen_text = False  # an opening tag only counts before any visible answer text

    def feed(self, text: str) -> list[tuple[bool, str]]:
        if self._done:
            return [(False, text)] if text else []
        buf = self._held + text
        self._held = ""
        out: list[tuple[bool, str]] = []
        while buf:
            if not self._inside:
                if self._seen_text:
                    self._done = True
                    out.append((False, buf))
                    return out
                stripped = buf.lstrip()
                if stripped.startswith(_OPEN):
                    lead = len(buf) - len(stripped)
                    if lead:
                        out.append((False, buf[:lead]))
                    self._inside = True
                    buf = stripped[len(_OPEN) :]
                    continue
                if _OPEN.startswith(stripped):
                    self._held = buf  # whitespace or a partial "<think"
                    return out
                self._seen_text = True
                continue
            idx = buf.find(_CLOSE)
            if idx >= 0:
                if idx:
                    out.append((True, buf[:idx]))
                self._inside = False
                self._done = True
                rest = buf[idx + len(_CLOSE) :]
                if rest:
                    out.append((False, rest))
                return out
            keep = _held_suffix(buf, _CLOSE)
            if len(buf) > keep:
                out.append((True, buf[: len(buf) - keep]))
            self._held = buf[len(buf) - keep :]
            return out
        return out

    def flush(self) -> list[tuple[bool, str]]:
        """What was held back when the stream ends (an unfinished tag is just text)."""
        held, self._held = self._held, ""
        return [(self._inside, held)] if held else []
