"""The incremental tokenizer's edges: Unicode tables, timeliness of cuts, linear work, odd input."""

from __future__ import annotations

import re
import unicodedata

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.tokens.budget import _CJK_LETTERS, _CJK_PUNCTUATION, _HARD, BudgetTokenizer, Cut, _last_hard_boundary
from runner.tokens.encodings import get_encoding

ENCODINGS = ["o200k_base", "cl100k_base"]

# Letters the `regex` module knows (Unicode 17+) but tiktoken's compiled-in tables (Unicode 16.0)
# do not, beside an unassigned code point: splitting with `regex` alone puts piece boundaries where
# tiktoken has none. Found by fuzzing; kept as regressions.
NEWER_THAN_TIKTOKEN = [
    "\U000d58e1\U0003e7dd:D\U00075d87 and more",
    "ab \U000323b0\U000323b1's 12 \U000323b2x.y\n",
    "훮\u0557ٖ֗\U000459e7 Uȶv/ z",
    "t\U000e288dѷ 🀺 x\U000323b0\U000323b0 word",
]


def feed_all(tok: BudgetTokenizer, chunks: list[str]) -> dict[int, Cut]:
    cuts = {cut.budget: cut for chunk in chunks for cut in tok.feed(chunk)}
    cuts.update((cut.budget, cut) for cut in tok.finish())
    return cuts


def assert_exact(enc: tiktoken.Encoding, text: str, cuts: dict[int, Cut]) -> None:
    tokens = enc.encode_ordinary(text)
    for budget, cut in cuts.items():
        want = enc.decode(tokens[:budget])
        assert cut.tokens == min(budget, len(tokens)), (text, budget)
        # tiktoken's decode shows a character split by the b-th token as U+FFFD; the cut drops it
        assert cut.text == want or (want.startswith(cut.text) and set(want[len(cut.text) :]) == {"\ufffd"}), (
            text,
            budget,
        )


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("text", NEWER_THAN_TIKTOKEN)
def test_letters_newer_than_tiktoken_do_not_move_boundaries(name: str, text: str) -> None:
    enc = get_encoding(name)
    total = len(enc.encode_ordinary(text))
    for chunks in (list(text), [text]):
        tok = BudgetTokenizer(enc, range(1, total + 2))
        cuts = feed_all(tok, chunks)
        assert tok.count == total
        assert_exact(enc, text, cuts)


@pytest.mark.parametrize("name", ENCODINGS)
def test_python_unicode_is_not_newer_than_tiktokens(name: str) -> None:
    """The unsure set (unassigned in Python's `unicodedata`) must cover every code point tiktoken
    classes differently from `regex`: so everything Python calls a letter, tiktoken must too."""
    enc = get_encoding(name)
    contraction = enc.encode_ordinary("'s")
    letters = [
        chr(code)
        for code in range(0x80, 0x40000, 7)
        if unicodedata.category(chr(code))[0] == "L" and not (0xD800 <= code < 0xE000)
    ]
    assert len(letters) > 15_000
    # a letter keeps "'s" as its own token after it (cl100k: its contraction piece; o200k: inside the
    # letter piece, same bytes); a non-letter pulls the apostrophe into a punctuation piece
    not_letters = [ch for ch in letters if enc.encode_ordinary(ch + "'s")[-len(contraction) :] != contraction]
    assert not_letters == []


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.from_regex(r"[A-Za-z]{1,9}|[0-9]{1,7}|[.,;()=+]{1,2}", fullmatch=True), min_size=1))
def test_cuts_never_lag_the_count_and_the_count_lags_one_word(name: str, words: list[str]) -> None:
    enc = get_encoding(name)
    text = " ".join(words)
    total = len(enc.encode_ordinary(text))
    tok = BudgetTokenizer(enc, range(1, total + 1))  # dense budgets: every chunk is worth looking at
    emitted: set[int] = set()
    for end in range(1, len(text) + 1):
        emitted.update(cut.budget for cut in tok.feed(text[end - 1]))
        assert emitted == set(range(1, tok.count + 1))  # a cut comes out the moment its tokens are final
        fed = text[:end]
        # after an ASCII letter or digit, a space ends the piece for good: all before it is final
        final = max((i for i in range(1, len(fed)) if fed[i] == " " and fed[i - 1].isalnum()), default=0)
        assert len(enc.encode_ordinary(fed[:final])) <= tok.count <= len(enc.encode_ordinary(fed))
    tok.finish()
    assert tok.count == total


class CountingEncoding:
    """A real tiktoken encoding that counts the characters it is asked to encode."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._encoding = encoding
        self._pat_str = encoding._pat_str
        self.encoded_chars = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.encoded_chars += len(text)
        return self._encoding.encode_ordinary(text)

    def decode_bytes(self, tokens: list[int]) -> bytes:
        return self._encoding.decode_bytes(tokens)


@pytest.mark.parametrize("chunk", [1, 5, 400])
def test_every_character_is_encoded_exactly_once(chunk: int) -> None:
    enc = get_encoding("o200k_base")
    text = " ".join(f"Step {i}: we have x_{i} = {i * i} — so 2^{i} ≥ {i}. 日本語テキスト" for i in range(600))
    counting = CountingEncoding(enc)
    total = len(enc.encode_ordinary(text))
    tok = BudgetTokenizer(counting, range(1, total, 97))  # type: ignore[arg-type]
    cuts = feed_all(tok, [text[i : i + chunk] for i in range(0, len(text), chunk)])
    assert tok.count == total
    assert counting.encoded_chars == len(text)  # linear: no character is ever re-encoded
    assert_exact(enc, text, cuts)


@pytest.mark.parametrize("name", ENCODINGS)
def test_surrogates_count_as_tiktoken_counts_them(name: str) -> None:
    enc = get_encoding(name)
    text = "ab\ud83dcd \ud83d\ude00 x y\udfff z"  # a JSON stream may decode to lone or paired surrogates
    total = len(enc.encode_ordinary(text))
    # every chunking that keeps the pair together: tiktoken joins it, and so do we
    for chunks in (["ab\ud83dc", "d \ud83d\ude00", " x y\udfff z"], [text], [*text[:6], text[6:]]):
        tok = BudgetTokenizer(enc, range(1, total + 1))
        cuts = feed_all(tok, chunks)
        assert tok.count == total
        assert tok.text == "ab\ufffdcd 😀 x y\ufffd z"
        assert_exact(enc, text, cuts)
    # a pair split across chunks is two lone halves, two U+FFFD (documented)
    tok = BudgetTokenizer(enc, [1])
    feed_all(tok, list(text))
    assert tok.text == "ab\ufffdcd \ufffd\ufffd x y\ufffd z"
    assert tok.count == len(enc.encode_ordinary(tok.text))


def test_after_done_feed_only_collects_and_finish_counts_everything() -> None:
    enc = get_encoding("cl100k_base")
    tok = BudgetTokenizer(enc, [2, 4])
    cuts = []
    for word in ["one", " two", " three", " four", " five", " six"]:
        cuts += tok.feed(word)
    assert tok.done
    assert [c.budget for c in cuts] == [2, 4]
    assert tok.feed(" seven eight") == []
    assert tok.finish() == []
    assert tok.count == len(enc.encode_ordinary("one two three four five six seven eight"))
    assert tok.finish() == []


def test_short_trace_gets_the_whole_text_for_later_budgets() -> None:
    enc = get_encoding("o200k_base")
    tok = BudgetTokenizer(enc, [3, 1000, 2000])
    cuts = feed_all(tok, ["The answer", " is 42."])
    total = len(enc.encode_ordinary("The answer is 42."))
    assert cuts[1000] == Cut(budget=1000, text="The answer is 42.", tokens=total)
    assert cuts[2000].tokens == total
    assert cuts[3].tokens == 3


@pytest.mark.parametrize("budgets", [[], [0, 3], [3, 2], [4, 4]])
def test_budgets_must_be_positive_and_increasing(budgets: list[int]) -> None:
    with pytest.raises(ValueError, match="strictly increasing positive"):
        BudgetTokenizer(get_encoding("o200k_base"), budgets)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("unit", ["\n", " ", "=", "a", "日"])
def test_a_model_stuck_on_one_character_costs_linear_work(name: str, unit: str) -> None:
    # one piece 100,000 characters long, fed a character at a time: re-examining the whole tail on
    # every chunk would be 10^10 steps (minutes); backing off as the tail grows makes it linear
    enc = get_encoding(name)
    text = "Let x " + unit * 100_000 + " so x = 4."
    total = len(enc.encode_ordinary(text))
    tok = BudgetTokenizer(enc, [3, 50, total - 2])
    cuts = feed_all(tok, list(text))
    assert tok.count == total
    assert_exact(enc, text, cuts)


HARD_FRAGMENTS = st.sampled_from(
    [
        "word",
        "It",
        "'s",
        "'ll",
        " ",
        "  ",
        "\n",
        "\r\n",
        "42",
        "7",
        ".",
        ",",
        "(",
        "/",
        "$x$",
        "\\frac",
        "我们",
        "面积",
        "，",
        "。",
        "：",
        "（",
        "」",
        "かな",
        "カナ",
        "한국",
        "ー",
        "\u3099",
        "１",
        "é",
        "\u0301",
        "\U000323b0",
        "😀",
    ]
)


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(HARD_FRAGMENTS, min_size=2, max_size=30), other=st.lists(HARD_FRAGMENTS, max_size=6))
def test_hard_boundaries_are_token_boundaries_whatever_follows(name: str, parts: list[str], other: list[str]) -> None:
    """The claim the tokenizer rests on: at a hard boundary the tokens before it are final once the
    next character is known, whatever text comes after that."""
    enc = get_encoding(name)
    text = "".join(parts)
    for match in _HARD.finditer(text):
        cut = match.end()
        head = enc.encode_ordinary(text[:cut])
        for rest in (text[cut:], text[cut] + "".join(other)):
            assert enc.encode_ordinary(text[:cut] + rest)[: len(head)] == head, (text, cut, rest)
            assert enc.encode_ordinary(text[:cut] + rest) == head + enc.encode_ordinary(rest), (text, cut, rest)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(HARD_FRAGMENTS, max_size=40), filler=st.integers(0, 200))
def test_the_last_hard_boundary_is_the_last_match_of_the_rule(parts: list[str], filler: int) -> None:
    """`_last_hard_boundary` looks back in growing windows with one greedy match each: it finds
    the same boundary as every match of the rule over the whole text, the last of them."""
    for text in ("".join(parts), "".join(parts) + "x" * filler, "x" * filler + "".join(parts)):
        assert _last_hard_boundary(text) == max((m.end() for m in _HARD.finditer(text)), default=0), text


def test_hard_boundary_characters_are_the_same_class_everywhere() -> None:
    # the CJK ranges are letters (Lo) and the CJK punctuation is punctuation in Python's Unicode
    # (14.0 on 3.11) and so in every later one; tiktoken agrees (letters keep 's, see above)
    letters = [chr(code) for a, b in re.findall(r"(.)-(.)", _CJK_LETTERS) for code in range(ord(a), ord(b) + 1)]
    assert {unicodedata.category(ch) for ch in letters} == {"Lo"}
    assert {unicodedata.category(ch)[0] for ch in _CJK_PUNCTUATION} == {"P"}
    enc = get_encoding("o200k_base")
    contraction = enc.encode_ordinary("'s")
    assert all(enc.encode_ordinary(ch + "'s")[-1:] == contraction for ch in letters[::97])
