"""The SSE parser: line endings, comments, multi-line data, fields, and any byte split."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.providers.sse import SSEEvent, SSEParser, parse_all

STREAM = (
    b": keep-alive\n\n"
    b"event: content_block_delta\n"
    b'data: {"text":"caf\xc3\xa9 \xe2\x88\x9e \xf0\x9f\x98\x80"}\n\n'
    b"data: line one\n"
    b"data: line two\n\n"
    b"id: 7\nretry: 1500\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("content_block_delta", '{"text":"café ∞ 😀"}'.encode()),
    SSEEvent("message", b"line one\nline two"),
    SSEEvent("message", b"no-space"),
    SSEEvent("message", b"[DONE]"),
]


def feed_split(payload: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    out: list[SSEEvent] = []
    prev = 0
    for cut in [*sorted(cuts), len(payload)]:
        out.extend(parser.feed(payload[prev:cut]))
        prev = cut
    return out


def test_whole_stream() -> None:
    parser = SSEParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.last_event_id == "7"
    assert parser.retry_ms == 1500
    assert not parser.pending


def test_every_single_byte_split() -> None:
    for cut in range(len(STREAM) + 1):
        assert feed_split(STREAM, [cut]) == EXPECTED, cut


def test_one_byte_at_a_time() -> None:
    assert feed_split(STREAM, list(range(len(STREAM)))) == EXPECTED


def test_crlf_and_cr_line_endings() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    cr = STREAM.replace(b"\n", b"\r")
    for payload in (crlf, cr):
        assert parse_all(payload) == EXPECTED
        for cut in range(len(payload) + 1):
            assert feed_split(payload, [cut]) == EXPECTED, (payload[:10], cut)


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [SSEEvent("message", b"a")]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("message", b"b")]


def test_comments_blank_blocks_and_unknown_fields_are_ignored() -> None:
    payload = b": ping\n\n\n\nfoo: bar\n\n:another\ndata: x\nbogus\n\n"
    assert parse_all(payload) == [SSEEvent("message", b"x")]


def test_event_without_data_is_not_dispatched_and_name_resets() -> None:
    assert parse_all(b"event: ping\n\ndata: y\n\n") == [SSEEvent("message", b"y")]


def test_empty_data_line_dispatches_empty_string() -> None:
    assert parse_all(b"data:\n\ndata\n\n") == [SSEEvent("message", b""), SSEEvent("message", b"")]


def test_bom_is_stripped_even_when_split() -> None:
    payload = b"\xef\xbb\xbfdata: z\n\n"
    for cut in range(len(payload) + 1):
        assert feed_split(payload, [cut]) == [SSEEvent("message", b"z")]


def test_pending_marks_a_cut_mid_event() -> None:
    parser = SSEParser()
    parser.feed(b'data: {"a":1}\n\ndata: {"b"')
    assert parser.pending
    parser2 = SSEParser()
    parser2.feed(b"data: x\n")
    assert parser2.pending  # a data line without its blank line
    parser3 = SSEParser()
    parser3.feed(b"data: x\n\n")
    assert not parser3.pending


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12),
    ending=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_any_split_any_line_ending(cuts: list[int], ending: bytes) -> None:
    payload = STREAM.replace(b"\n", ending)
    cuts = [min(c, len(payload)) for c in cuts]
    assert feed_split(payload, cuts) == EXPECTED


def test_many_random_events_roundtrip() -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    texts = ["".join(rng.choice("ab ç😀\u2028") for _ in range(rng.randrange(0, 30))) for _ in range(200)]
    payload = b"".join(b"data: " + t.encode() + b"\n\n" for t in texts)
    cuts = sorted(rng.randrange(len(payload) + 1) for _ in range(300))
    got = [e.data.decode() for e in feed_split(payload, cuts)]
    assert got == texts, f"seed={seed}"


def test_empty_reads_change_nothing() -> None:
    for ending in (b"\n", b"\r\n", b"\r"):
        payload = STREAM.replace(b"\n", ending)
        parser = SSEParser()
        out: list[SSEEvent] = []
        for i in range(len(payload)):
            out += parser.feed(b"")  # an empty read between a \r and its \n keeps them one line end
            out += parser.feed(payload[i : i + 1])
        assert out == EXPECTED, ending


def test_an_event_over_many_reads_and_blank_lines_split_across_reads() -> None:
    data = bytes(range(0x20, 0x7F)) * 2000
    parser = SSEParser()
    out = parser.feed(b"data: " + data[:7])
    for i in range(7, len(data), 7):
        out += parser.feed(data[i : i + 7])
    out += parser.feed(b"\n")  # the blank line's two \n arrive in two reads
    assert out == [] and parser.pending
    out += parser.feed(b"\ndata: next\n\n")
    assert out == [SSEEvent("message", data), SSEEvent("message", b"next")]
    assert not parser.pending
