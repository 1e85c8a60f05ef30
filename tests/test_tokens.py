"""The incremental tokenizer against tiktoken's own encode_ordinary, over random texts and chunkings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.tokens.budget import BudgetTokenizer
from runner.tokens.count import count_chat_tokens, count_tokens
from runner.tokens.encodings import get_encoding
from runner.types import Message

ENCODINGS = ["o200k_base", "cl100k_base"]

# building blocks that stress the split regex: letters/case runs, contractions, digit groups,
# whitespace runs with newlines, punctuation runs, emoji, CJK, combining marks, code
FRAGMENTS = st.sampled_from(
    [
        "the",
        " The",
        "HTTPServer",
        "don't",
        "I'LL",
        "'s",
        " 12345",
        "7",
        "3.14159",
        "  ",
        "   \n",
        "\n\n",
        "\r\n",
        "\t",
        "    x",
        "!!",
        "...",
        " ?!",
        "—",
        "😀",
        "👩‍💻",
        "日本語",
        "한국어",
        "é",
        "e\u0301",
        "ß",
        "def f(x):\n    return x**2\n",
        '{"a": [1, 2]}',
        "\\boxed{204}",
        "$x^2$",
        "ÆØÅ",
        " ",
        "a",
        "1",
        "\u00a0",
        "\U000323b0",  # a letter since Unicode 17, unassigned to tiktoken (Unicode 16)
        "\U0010fffd",
        "a\ud83d",  # a lone surrogate, as a JSON stream can deliver
    ]
)
TEXTS = st.one_of(
    st.lists(FRAGMENTS, min_size=1, max_size=60).map("".join),
    st.text(min_size=1, max_size=300),
)


def chunkings(text: str, draw: st.DrawFn) -> list[str]:
    mode = draw(st.sampled_from(["chars", "random", "whole"]))
    if mode == "chars":
        return list(text)
    if mode == "whole":
        return [text]
    chunks, i = [], 0
    while i < len(text):
        step = draw(st.integers(1, 12))
        chunks.append(text[i : i + step])
        i += step
    return chunks


def expected_cut(enc, full: str, budget: int) -> str:
    return enc.decode(enc.encode_ordinary(full)[:budget])


def whole_characters(data: bytes) -> bytes:
    """The bytes without an incomplete UTF-8 sequence at the end (the cut rule, stated independently)."""
    for drop in range(4):
        try:
            data[: len(data) - drop].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return data[: len(data) - drop]
    raise AssertionError(f"not UTF-8 even without its last 3 bytes: {data!r}")


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), text=TEXTS)
def test_cuts_and_count_are_exact_whatever_the_chunking(name: str, data: st.DataObject, text: str) -> None:
    enc = get_encoding(name)
    total = len(enc.encode_ordinary(text))
    budgets = sorted(set(data.draw(st.lists(st.integers(1, total + 5), min_size=1, max_size=5))))
    tok = BudgetTokenizer(enc, budgets)
    cuts = {}
    for chunk in chunkings(text, data.draw):
        for cut in tok.feed(chunk):
            cuts[cut.budget] = cut
        assert tok.count <= total  # a lower bound at every moment
        assert set(cuts) == {b for b in budgets if b <= tok.count}  # out as soon as its tokens are final
    for cut in tok.finish():
        cuts[cut.budget] = cut
    assert tok.count == total
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # as tiktoken reads it
    assert tok.text == text
    assert sorted(cuts) == budgets
    for b in budgets:
        cut = cuts[b]
        assert cut.tokens == min(b, total)
        want = expected_cut(enc, text, b)
        # the cut never holds half a character: where tiktoken's decode shows U+FFFD for a split
        # character at the end, the cut simply stops before that character
        assert cut.text == want or (want.startswith(cut.text) and set(want[len(cut.text) :]) == {"\ufffd"})
        assert "\ufffd" not in cut.text or "\ufffd" in text
        if b < total:
            assert cut.text.encode() == whole_characters(enc.decode_bytes(enc.encode_ordinary(text)[:b]))
        assert text.startswith(cut.text)


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), text=TEXTS)
def test_reads_of_joined_chunks_cut_as_chunk_by_chunk(name: str, data: st.DataObject, text: str) -> None:
    """The lane feeds the text of one socket read at once: the chunks a provider sent (one token
    each, as real reasoning streams are) joined in reads of any size. Cuts and count equal those
    of feeding the chunks one by one, and each cut is out once the read that finalised it is in."""
    enc = get_encoding(name)
    tokens = enc.encode_ordinary(text)
    chunks = [enc.decode(tokens[i : i + 1]) for i in range(len(tokens))]  # one token a chunk
    budgets = sorted(set(data.draw(st.lists(st.integers(1, len(tokens) + 3), min_size=1, max_size=5))))
    one_by_one = BudgetTokenizer(enc, budgets)
    single = {cut.budget: cut for chunk in chunks for cut in one_by_one.feed(chunk)}
    single.update((cut.budget, cut) for cut in one_by_one.finish())
    batched = BudgetTokenizer(enc, budgets)
    joined: dict[int, object] = {}
    i = 0
    while i < len(chunks):
        size = data.draw(st.integers(1, 40))  # a read holds one chunk or many
        for cut in batched.feed("".join(chunks[i : i + size])):
            joined[cut.budget] = cut
        i += size
        assert set(joined) == {b for b in budgets if b <= batched.count}
    joined.update((cut.budget, cut) for cut in batched.finish())
    assert joined == single
    assert batched.count == one_by_one.count


@pytest.mark.parametrize("name", ENCODINGS)
def test_cut_inside_a_multibyte_character(name: str) -> None:
    enc = get_encoding(name)
    text = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀𓀁𓀂"  # rare characters take several byte-level tokens each
    tokens = enc.encode_ordinary(text)
    odd = next(b for b in range(1, len(tokens)) if enc.decode(tokens[:b]).endswith("\ufffd"))
    tok = BudgetTokenizer(enc, [odd])
    cuts = [c for ch in text for c in tok.feed(ch)] + tok.finish()
    assert cuts[0].tokens == odd
    assert cuts[0].text == enc.decode(tokens[:odd]).rstrip("\ufffd")
    assert text.startswith(cuts[0].text)


def test_cut_is_emitted_as_soon_as_final_and_done_stops_the_stream() -> None:
    enc = get_encoding("o200k_base")
    words = [f" word{i}" for i in range(400)]
    tok = BudgetTokenizer(enc, [10, 50])
    emitted_at = {}
    for i, w in enumerate(words):
        for cut in tok.feed(w):
            emitted_at[cut.budget] = i
        if tok.done:
            break
    assert set(emitted_at) == {10, 50}
    # a few words of guard after the budget, not the end of the stream
    assert emitted_at[50] < 60
    assert tok.done


def test_feed_after_finish_and_bad_budgets() -> None:
    enc = get_encoding("cl100k_base")
    with pytest.raises(ValueError, match="strictly increasing"):
        BudgetTokenizer(enc, [5, 5])
    tok = BudgetTokenizer(enc, [3])
    tok.feed("hello there")
    tok.finish()
    with pytest.raises(RuntimeError):
        tok.feed("more")


def test_chat_framing() -> None:
    enc = get_encoding("o200k_base")
    msgs = [Message("system", "Be brief."), Message("user", "Hi")]
    assert count_chat_tokens(enc, msgs) == 3 + sum(
        3 + count_tokens(enc, m.role) + count_tokens(enc, m.content) for m in msgs
    )
