"""Simulated prompt caching, so that cached-token fields and their prices can be tested.

- Automatic prefix caching (OpenAI, xAI, DeepSeek, Gemini implicit caching): a prompt of at least
  1,024 tokens is cached in 128-token blocks; a later prompt with the same model and key reports
  the longest cached prefix as ``cached_tokens``.
- Explicit caching (Anthropic ``cache_control``): the prefix up to the marked turn is written on
  first use (``cache_creation_input_tokens``) and read afterwards (``cache_read_input_tokens``),
  if it is at least 1,024 tokens long.

Entries never expire by time (a simulator run is short); the oldest go when the table is full.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict

MIN_TOKENS = 1024
BLOCK = 128


class PromptCache:
    """Prefix digests seen recently, per scope (model and key)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity

    def _remember(self, digest: bytes) -> None:
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def automatic(self, scope: str, tokens: list[int]) -> int:
        """Cached prefix length of ``tokens`` (a multiple of 128, >= 1024, or 0); stores its blocks."""
        if len(tokens) < MIN_TOKENS:
            return 0
        running = hashlib.blake2b(scope.encode(), digest_size=16)
        cached = 0
        for end in range(BLOCK, len(tokens) + 1, BLOCK):
            running.update(array("I", tokens[end - BLOCK : end]).tobytes())
            if end < MIN_TOKENS:
                continue
            digest = running.copy().digest()
            if digest in self._seen:  # the digest covers the whole prefix up to `end`
                cached = end
            self._remember(digest)
        return cached

    def explicit(self, scope: str, prefix: list[int]) -> tuple[int, int]:
        """(read, written) tokens for an explicitly marked prefix."""
        if len(prefix) < MIN_TOKENS:
            return 0, 0
        digest = hashlib.blake2b(scope.encode() + b"\0" + array("I", prefix).tobytes(), digest_size=16).digest()
        if digest in self._seen:
            self._seen.move_to_end(digest)
            return len(prefix), 0
        self._remember(digest)
        return 0, len(prefix)
