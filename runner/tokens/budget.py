r"""Exact, linear-time incremental tokenization of a streamed trace, with a cut at every budget.

tiktoken splits text into pieces with its encoding's regex, then applies BPE inside each piece;
tokens never cross pieces. So the tokens of a prefix that ends on a piece boundary are final once
no later text can move that boundary, and that prefix can be encoded once, on its own. We find
such boundaries two ways:

* **Hard boundaries**, which no later text and no Unicode table can move: after an ASCII letter,
  CJK ideograph, kana or Hangul syllable followed by ASCII or CJK punctuation, a space or a digit
  (not an apostrophe: o200k attaches 's to a word); after an ASCII digit followed by a non-digit
  of those kinds or a letter; after a newline followed by a letter or digit. No piece of either
  encoding's regex spans such a pair, and matching stops on its second character, so nothing
  after that is ever looked at. Each character involved has had the same class in every Unicode
  version since 14.0. In prose, code and CJK text they come every word or clause.
* **Regex pieces** past the last hard boundary: the text after it is split with the encoding's
  own regex and all but the last `_GUARD` pieces are final (more text can only grow a letter run,
  fill a digit group, attach a contraction or re-split a whitespace run at the very end), and a
  committed stretch never ends on a whitespace piece, whose split depends on what follows it.

The regex pieces come from the ``regex`` module, whose Unicode tables are newer than the ones
compiled into tiktoken (Unicode 16.0 for tiktoken 0.14): a letter assigned since (a CJK extension
ideograph, say) is a letter to one and unassigned to the other, and the two split differently
around it. So the regex route is skipped whenever the text past the last hard boundary holds a
code point unassigned in Python's own ``unicodedata``; the trace then commits at hard boundaries
only. That is exact while Python's Unicode is not newer than tiktoken's (3.11: 14.0; 3.14: 16.0):
a test checks that tiktoken takes every letter Python knows for a letter.

Work is skipped while no budget can possibly be crossed: a token holds at least one UTF-8 byte,
so ``final tokens + bytes not yet encoded < next budget`` proves no cut is final yet. Most chunks
cost one append and one subtraction; the text is split and encoded about once in total. A tail
that cannot be committed (one piece thousands of characters long, as when a model repeats one
character) is looked at again only when it has grown by half: the work stays linear, and a cut
inside such a run may come out up to that much later than the moment it became final.

The cut rule: the cut at budget b is the decoded bytes of the first b tokens of the whole trace.
When the b-th token ends inside a multi-byte character (byte-level BPE can split one), the
incomplete trailing bytes are dropped, so a cut never holds half a character; ``Cut.tokens`` is
still b. Such a cut equals ``enc.decode(enc.encode_ordinary(full)[:b])`` without its trailing
U+FFFD replacement character(s); everywhere else the two are identical.

Surrogates (a JSON stream can decode to them) are mended on arrival as tiktoken mends them: a
pair within one chunk becomes its character, a lone one U+FFFD. A pair split across two chunks
therefore counts as two U+FFFD, where encoding the joined text would see one character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import cache
from itertools import pairwise

import regex
import tiktoken

# trailing regex pieces kept uncommitted: more text can only change the last pieces' split
_GUARD = 3
# a hard boundary (see the module docstring) is the end of a match; the lookaheads keep the
# second character out of the match (stdlib re: several times faster here than `regex`)
_CJK_LETTERS = "\u4e00-\u9fff\u3041-\u3096\u30a1-\u30fa\uac00-\ud7a3"  # Lo since Unicode 14 at the latest
_CJK_PUNCTUATION = "\u3001\u3002\u300c\u300d\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f"  # 、。「」！（），：；？
_HARD = re.compile(
    # a letter, then punctuation, space or a digit (no apostrophe: o200k attaches 's to letters)
    rf"[A-Za-z{_CJK_LETTERS}](?=[\x00-\x26\x28-\x40\x5b-\x60\x7b-\x7f{_CJK_PUNCTUATION}])"
    # a digit, then a letter, punctuation or space
    rf"|[0-9](?=[\x00-\x2f\x3a-\x7f{_CJK_LETTERS}{_CJK_PUNCTUATION}])"
    # a line break, then a letter or digit
    rf"|\n(?=[A-Za-z0-9{_CJK_LETTERS}])"
)
# the last hard boundary in one match: a greedy run to the end, then back to the last place the
# boundary matches (one Match object, where `finditer` made one per boundary of the window)
_LAST_HARD = re.compile(r"(?s:.*)(?:" + _HARD.pattern + ")")
_WHITESPACE = regex.compile(r"\s+")
_NEVER = 1 << 62  # slack once every cut is out: feed only appends
# uncommitted bytes past which a stuck tail is re-examined only after it grows by half; prose
# leaves a word or two uncommitted, so this only ever applies to degenerate runs
_LONG_TAIL = 256


class Cut:
    """The trace at one budget.

    Attributes:
        budget: the budget this cut is for.
        text: the decoded first ``tokens`` tokens, without a trailing partial character.
        tokens: the budget, or fewer when the whole trace is shorter.

    A cut made while streaming keeps only where it ends in the tokenizer's text and builds its
    text when first asked: every cut is a prefix of the same trace, and with thousands of streams
    in flight one copy of each prefix per budget would be most of a stream's memory.
    """

    __slots__ = ("_end", "_parts", "_text", "budget", "tokens")

    def __init__(
        self, budget: int, text: str | None = None, tokens: int = 0, *, parts: list[str] | None = None, end: int = 0
    ) -> None:
        self.budget = budget
        self.tokens = tokens
        self._text = text
        self._parts = parts
        self._end = end

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self._parts or ())[: self._end]
            self._parts = None
        return self._text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cut):
            return NotImplemented
        return (self.budget, self.tokens, self.text) == (other.budget, other.tokens, other.text)

    def __hash__(self) -> int:
        return hash((self.budget, self.tokens, self.text))

    def __repr__(self) -> str:
        return f"Cut(budget={self.budget}, text={self.text!r}, tokens={self.tokens})"


@cache
def _splitter(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def _last_hard_boundary(text: str) -> int:
    """The last hard boundary in the text (0 if none), looking back from the end in growing windows."""
    window = 32
    while True:
        start = max(0, len(text) - window)
        match = _LAST_HARD.match(text, start)
        if match:
            return match.end()
        if start == 0:
            return 0
        window *= 4


@cache
def _maybe_unsure() -> re.Pattern[str]:
    """Characters outside the code points Python's Unicode assigns in the BMP (built once, ~30 ms):
    finds the few candidates for the exact check in C, where a loop over CJK text would be slow."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code)) not in ("Cn", "Cs"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return re.compile("[^" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges) + "]")


def _unsure_at_or_after(text: str, start: int) -> bool:
    """Whether a code point whose class tiktoken may see differently (one unassigned in Python's
    Unicode, or a surrogate) occurs in ``text[start:]``."""
    return any(unicodedata.category(match.group()) in ("Cn", "Cs") for match in _maybe_unsure().finditer(text, start))


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _mended(text: str) -> tuple[str, int]:
    """The text with surrogates mended as tiktoken mends them (pairs joined, lone ones U+FFFD),
    and its length in UTF-8 bytes."""
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return text, len(text.encode("utf-8"))


def _decode_prefix(encoding: tiktoken.Encoding, tokens: Sequence[int]) -> str:
    data = encoding.decode_bytes(list(tokens))
    return data.decode("utf-8", "ignore") if _ends_mid_char(data) else data.decode("utf-8", "replace")


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

    Feed it the text as it streams; each cut is returned by the `feed` call after which its
    tokens can no longer change, and `finish` returns the rest.

    Args:
        encoding: the tiktoken encoding of the model.
        budgets: strictly increasing positive token budgets.

    Raises:
        ValueError: the budgets are empty, not positive or not strictly increasing.
    """

    def __init__(self, encoding: tiktoken.Encoding, budgets: Sequence[int]) -> None:
        budgets = list(budgets)
        if not budgets or budgets[0] <= 0 or any(b2 <= b1 for b1, b2 in pairwise(budgets)):
            raise ValueError(f"budgets must be strictly increasing positive integers, got {budgets}")
        self._encoding = encoding
        self._split = _splitter(encoding._pat_str)
        self._budgets = budgets
        self._next = 0  # index of the first budget without a cut yet
        self._committed: list[str] = []  # text whose tokens are final, in stretches
        self._committed_chars = 0
        self._committed_tokens = 0
        self._chunks: list[str] = []  # text fed since, not yet encoded
        # bytes that may still arrive before the next budget could be crossed
        self._slack = budgets[0]
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
        """All text fed so far (surrogates mended, see the module docstring)."""
        return "".join(self._committed) + "".join(self._chunks)

    def feed(self, text: str) -> list[Cut]:
        """Add a chunk; return the cuts that became final because of it, in budget order.

        Raises:
            RuntimeError: the stream was already finished.
        """
        if self._finished:
            raise RuntimeError("BudgetTokenizer.feed() called after finish()")
        if text.isascii():
            self._slack -= len(text)
        else:
            text, size = _mended(text)  # a JSON stream can decode to lone surrogates
            self._slack -= size
        self._chunks.append(text)
        if self._slack > 0:
            return []  # no budget can be crossed yet: not even worth splitting
        return self._advance()

    def finish(self) -> list[Cut]:
        """The stream ended: every remaining cut, in budget order (budgets past the end get the whole text)."""
        if self._finished:
            return []
        self._finished = True
        pending = "".join(self._chunks)
        self._chunks = []
        cuts = self._commit(pending) if pending else []
        while not self.done:
            cuts.append(
                Cut(
                    budget=self._budgets[self._next],
                    tokens=self._committed_tokens,
                    parts=self._committed,
                    end=self._committed_chars,
                )
            )
            self._next += 1
        return cuts

    def _advance(self) -> list[Cut]:
        pending = "".join(self._chunks)
        end = self._final_end(pending)
        cuts = self._commit(pending[:end]) if end else []
        rest = pending[end:]
        self._chunks = [rest] if rest else []
        if self.done:
            self._slack = _NEVER
            return cuts
        rest_bytes = _utf8_len(rest)
        self._slack = self._budgets[self._next] - self._committed_tokens - rest_bytes
        if rest_bytes > _LONG_TAIL:
            # a run nothing can be committed from yet (a model stuck repeating one character makes
            # one giant piece): look again only once it has grown by half, so the work stays linear
            self._slack = max(self._slack, rest_bytes // 2)
        return cuts

    def _final_end(self, pending: str) -> int:
        """How much of the pending text has final tokens (an index into it; 0 for none)."""
        start = _last_hard_boundary(pending)  # 0 if none: the uncommitted text starts on a boundary too
        if not pending.isascii() and _unsure_at_or_after(pending, start):
            return start
        starts = [match.start() for match in self._split.finditer(pending, start)]
        kept = len(starts) - _GUARD
        # a stretch is encoded on its own, where a trailing whitespace piece would meet the end
        # of the text instead of what follows it: end every stretch on a non-whitespace piece
        while kept > 0 and _WHITESPACE.fullmatch(pending, starts[kept - 1], starts[kept]):
            kept -= 1
        return starts[kept] if kept > 0 else start

    def _commit(self, stretch: str) -> list[Cut]:
        tokens = self._encoding.encode_ordinary(stretch)
        base = self._committed_tokens
        cuts: list[Cut] = []
        while not self.done and self._budgets[self._next] <= base + len(tokens):
            budget = self._budgets[self._next]
            head = _decode_prefix(self._encoding, tokens[: budget - base])
            # the head is a prefix of this stretch, which is committed just below
            end = self._committed_chars + len(head)
            cuts.append(Cut(budget=budget, tokens=budget, parts=self._committed, end=end))
            self._next += 1
        self._committed.append(stretch)
        self._committed_chars += len(stretch)
        self._committed_tokens += len(tokens)
        return cuts
