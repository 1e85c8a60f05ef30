r"""Exact, linear-time incremental tokenization of a streamed trace, with a cut at every budget.

tiktoken splits text into pieces with its encoding's regex, then applies BPE inside each piece;
tokens never cross pieces. So once a piece can no longer change, its tokens are final. Only the
last few pieces of the text seen so far can still change when more text arrives (a letter run can
grow, a whitespace run can split differently, a digit group can fill up, a contraction can attach),
so we keep `_GUARD` trailing pieces uncommitted and BPE each committed stretch exactly once. A
committed stretch always ends on a non-whitespace piece: whitespace is the only piece whose split
depends on what follows it (`\s++$`, `\s+(?!\S)`), and a stretch is encoded on its own.

Work is skipped while no budget can possibly be crossed: a token is at least one UTF-8 byte, so
``committed tokens + bytes of uncommitted text < next budget`` proves no cut is final yet. This is
what makes one-token chunks cheap: most chunks cost one length check.

The cut rule: the cut at budget b is the decoded bytes of the first b tokens of the whole trace.
When the b-th token ends inside a multi-byte character (byte-level BPE can split one), the
incomplete trailing bytes are dropped, so a cut never holds half a character; ``Cut.tokens`` is
still b. Such a cut equals ``enc.decode(enc.encode_ordinary(full)[:b])`` without its trailing
U+FFFD replacement character(s); everywhere else the two are identical.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import msgspec
import regex
import tiktoken

from runner.providers.base import Message

# trailing regex pieces kept uncommitted: more text can only change the last pieces' split
_GUARD = 3
_WHITESPACE = regex.compile(r"\s+")


class Cut(msgspec.Struct, frozen=True):
    """The trace at one budget."""

    budget: int
    text: str
    tokens: int  # == budget, or fewer when the trace ended before the budget


def _decode_prefix(encoding: tiktoken.Encoding, tokens: Sequence[int]) -> str:
    data = encoding.decode_bytes(list(tokens))
    return data.decode("utf-8", errors="ignore") if _ends_mid_char(data) else data.decode("utf-8", "replace")


def _ends_mid_char(data: bytes) -> bool:
    """Whether the bytes end inside a multi-byte UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): how long should its sequence be?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return need > back
    return False


class BudgetTokenizer:
    """Counts a streamed text's tokens exactly and cuts it at every budget.

    Args:
        encoding: the tiktoken encoding of the model.
        budgets: strictly increasing positive token budgets.
    """

    def __init__(self, encoding: tiktoken.Encoding, budgets: Sequence[int]) -> None:
        if (
            not budgets
            or any(b <= 0 for b in budgets)
            or any(b2 <= b1 for b1, b2 in itertools.pairwise(budgets))
        ):
            raise ValueError(f"budgets must be strictly increasing positive integers, got {list(budgets)}")
        self._encoding = encoding
        self._pattern = regex.compile(encoding._pat_str)
        self._budgets = list(budgets)
        self._next = 0  # index of the first budget without a cut yet
        self._committed: list[str] = []  # committed text, in stretches
        self._committed_tokens = 0
        self._pending = ""  # text not yet committed (the guard pieces and anything unprocessed)
        self._pending_bytes = 0
        self._finished = False

    @property
    def count(self) -> int:
        """Tokens known to be final so far; never more than the final count."""
        return self._committed_tokens

    @property
    def done(self) -> bool:
        """True once the last budget's cut is final: the stream can be cancelled."""
        return self._next >= len(self._budgets)

    @property
    def text(self) -> str:
        """All text fed so far."""
        return "".join(self._committed) + self._pending

    def feed(self, text: str) -> list[Cut]:
        """Add a chunk; return the cuts that became final because of it, in budget order."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not text:
            return []
        self._pending += text
        self._pending_bytes += len(text.encode("utf-8")) if not text.isascii() else len(text)
        if self.done or self._committed_tokens + self._pending_bytes < self._budgets[self._next]:
            return []  # no budget can be crossed yet: not even worth splitting
        return self._process(final=False)

    def finish(self) -> list[Cut]:
        """The stream ended: commit everything; budgets past the end get the whole text."""
        if self._finished:
            return []
        cuts = self._process(final=True) if self._pending else []
        self._finished = True
        whole = "".join(self._committed)
        while not self.done:
            cuts.append(Cut(budget=self._budgets[self._next], text=whole, tokens=self._committed_tokens))
            self._next += 1
        return cuts

    def _process(self, *, final: bool) -> list[Cut]:
        if final:
            stretch, rest = self._pending, ""
        else:
            pieces = [(m.start(), m.end()) for m in self._pattern.finditer(self._pending)]
            first_kept = len(pieces) - _GUARD
            # a stretch is encoded on its own, where a trailing whitespace piece would meet `$` or
            # `(?!\S)` instead of the text after it: end every stretch on a non-whitespace piece
            while first_kept > 0 and _WHITESPACE.fullmatch(self._pending, *pieces[first_kept - 1]):
                first_kept -= 1
            if first_kept <= 0:
                return []
            cut_at = pieces[first_kept][0]
            stretch, rest = self._pending[:cut_at], self._pending[cut_at:]
        tokens = self._encoding.encode_ordinary(stretch)
        cuts: list[Cut] = []
        base = self._committed_tokens
        while not self.done and self._budgets[self._next] <= base + len(tokens):
            budget = self._budgets[self._next]
            prefix = "".join(self._committed) if self._committed else ""
            cuts.append(
                Cut(budget=budget, text=prefix + _decode_prefix(self._encoding, tokens[: budget - base]), tokens=budget)
            )
            self._next += 1
        self._committed.append(stretch)
        self._committed_tokens += len(tokens)
        self._pending = rest
        self._pending_bytes = len(rest.encode("utf-8"))
        return cuts


def count_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    """Tokens of plain text (no special tokens)."""
    return len(encoding.encode_ordinary(text))


def count_chat_tokens(encoding: tiktoken.Encoding, messages: Sequence[Message]) -> int:
    """Prompt tokens of a chat request: OpenAI's framing of 3 per message and 3 for the reply."""
    total = 3
    for message in messages:
        total += 3 + len(encoding.encode_ordinary(message.role)) + len(encoding.encode_ordinary(message.content))
    return total
