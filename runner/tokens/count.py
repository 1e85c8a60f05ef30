"""Counting the tokens of text and of chat prompts with a tiktoken encoding."""

from __future__ import annotations

from collections.abc import Sequence

import tiktoken

from runner.types import Message


def count_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    """Tokens of plain text (no special tokens)."""
    return len(encoding.encode_ordinary(text))


def count_chat_tokens(encoding: tiktoken.Encoding, messages: Sequence[Message]) -> int:
    """Prompt tokens of a chat request: OpenAI's framing of 3 per message and 3 for the reply."""
    total = 3
    for message in messages:
        total += 3 + count_tokens(encoding, message.role) + count_tokens(encoding, message.content)
    return total
