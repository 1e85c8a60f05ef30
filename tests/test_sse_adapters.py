"""Each adapter's decoder gives the same events whatever the byte chunking and line endings.

No sockets here: recorded wire bytes are cut at arbitrary points (hypothesis picks them, and
prints the cuts on failure) and fed through the parser into each protocol's decoder.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.providers.anthropic import AnthropicAdapter
from runner.providers.gemini import GeminiAdapter
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.providers.openai_responses import OpenAIResponsesAdapter
from runner.providers.streaming import SSEAdapter
from runner.providers.think import ThinkSplitter
from runner.types import RateLimitReading, StreamEvent

EMOJI_TEXT = "naïve café ∞ 😀 — 漢字"


def _data(payload: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(payload, ensure_ascii=False) + "\n\n").encode()


CHAT = b"".join(
    [
        b": keep-alive\n\n",
        _data({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Think " + EMOJI_TEXT}}]}),
        _data({"choices": [{"index": 0, "delta": {"content": EMOJI_TEXT}}], "obfuscation": "zz"}),
        _data({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
        _data({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}}),
        b"data: [DONE]\n\n",
    ]
)
ANTHROPIC = b"".join(
    _data(e, e["type"])
    for e in [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": EMOJI_TEXT},
        },
        {"type": "ping"},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": EMOJI_TEXT}},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
)
RESPONSES = b"".join(
    _data(e, e["type"])
    for e in [
        {"type": "response.reasoning_summary_text.delta", "delta": EMOJI_TEXT},
        {"type": "response.output_text.delta", "delta": EMOJI_TEXT},
        {"type": "response.completed", "response": {"usage": {"input_tokens": 2, "output_tokens": 4}}},
    ]
)
GEMINI = b"".join(
    [
        _data({"candidates": [{"content": {"parts": [{"text": EMOJI_TEXT, "thought": True}]}}]}),
        _data(
            {
                "candidates": [{"content": {"parts": [{"text": EMOJI_TEXT}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "thoughtsTokenCount": 4},
            }
        ),
    ]
)
STREAMS: list[tuple[SSEAdapter, bytes]] = [
    (OpenAIChatAdapter("http://h", None), CHAT),
    (AnthropicAdapter("http://h", None), ANTHROPIC),
    (OpenAIResponsesAdapter("http://h", None), RESPONSES),
    (GeminiAdapter("http://h", None), GEMINI),
]


def reads(pieces: list[bytes]) -> Callable[[], Awaitable[bytes]]:
    """A body that arrives in these reads, then ends (b"", as aiohttp's ``readany`` says so)."""
    queue = list(pieces)

    async def read() -> bytes:
        return queue.pop(0) if queue else b""

    return read


def decode(adapter: SSEAdapter, payload: bytes, cuts: list[int]) -> list[StreamEvent]:
    """The payload's events through the adapter's read loop, the body split at ``cuts``."""
    bounds = [0, *sorted(cuts), len(payload)]
    pieces = [payload[a:b] for a, b in itertools.pairwise(bounds) if b > a]  # b"" would be the end

    async def run() -> list[StreamEvent]:
        return [e async for batch in adapter.batches(reads(pieces), RateLimitReading()) for e in batch]

    return asyncio.run(run())


WHOLE = [decode(a, p, []) for a, p in STREAMS]


def test_whole_streams_decode() -> None:
    for events in WHOLE:
        assert len(events) >= 4


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(min_value=0, max_value=len(STREAMS) - 1),
    fractions=st.lists(st.floats(min_value=0, max_value=1), max_size=20),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_chunking_any_line_ending(which: int, fractions: list[float], ending: str) -> None:
    adapter, payload = STREAMS[which]
    payload = payload.replace(b"\n", ending.encode())
    cuts = [int(f * len(payload)) for f in fractions]
    assert decode(adapter, payload, cuts) == WHOLE[which]


def _split_think(text: str, cuts: list[int]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    reasoning, content = [], []
    prev = 0
    for cut in [*sorted(cuts), len(text)]:
        for is_r, piece in splitter.feed(text[prev:cut]):
            (reasoning if is_r else content).append(piece)
        prev = cut
    for is_r, piece in splitter.flush():
        (reasoning if is_r else content).append(piece)
    return "".join(reasoning), "".join(content)


@settings(max_examples=200, deadline=None)
@given(
    text=st.sampled_from(
        [
            "<think>\nsteps <b> < / think\n</think>\n\nAnswer: 4 </think> <think>",
            "  <think>x</think>y",
            "no tags at all <think>here</think>",
            "<think>cut before the end",
            "<thi",
            "",
        ]
    ),
    fractions=st.lists(st.floats(min_value=0, max_value=1), max_size=10),
)
def test_think_splitter_any_chunking(text: str, fractions: list[float]) -> None:
    cuts = [int(f * len(text)) for f in fractions]
    assert _split_think(text, cuts) == _split_think(text, [])


def test_think_splitter_semantics() -> None:
    assert _split_think("<think>\nsteps\n</think>\n\nAnswer", []) == ("\nsteps\n", "\n\nAnswer")
    assert _split_think("  <think>x</think>y", []) == ("x", "  y")
    assert _split_think("no tags <think>here</think>", []) == ("", "no tags <think>here</think>")
    assert _split_think("<think>cut", []) == ("cut", "")
    assert _split_think("<thi", []) == ("", "<thi")
