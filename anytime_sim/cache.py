"""Simulated prompt caching, as each provider documents it (``providers.md`` §10).

Two kinds, both keyed per model and API key (a cache belongs to one organisation):

- **Automatic prefix caching** (OpenAI, xAI, DeepSeek, Gemini implicit caching): every prompt
  of at least ``minimum`` tokens is cached in blocks of ``step`` tokens; a later prompt with the
  same prefix reports the longest cached block-aligned prefix as cached tokens. The rule per
  profile is in `AUTOMATIC`.
- **Explicit caching** (Anthropic ``cache_control``): only prefixes that end at a breakpoint are
  written (at most four breakpoints, each at least the model's minimum long); a request reads the
  longest prefix written earlier that ends at one of its own block boundaries, looking back at
  most `LOOKBACK` blocks from each of its breakpoints, and writes the rest up to its last
  breakpoint (``cache_creation_input_tokens``).

A cache entry is written only once the request that writes it has been processed, i.e. when its
first output token leaves (`PendingWrites` is committed by the call then): a request sent while
the writer is still in its prefill misses, as on the real APIs. Entries never expire by time (a
simulator run is short); the oldest go when the table is full.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple


class CacheRule(NamedTuple):
    """How a provider's automatic cache counts: prompts shorter than ``minimum`` tokens are not
    cached, and hits are counted in whole blocks of ``step`` tokens."""

    minimum: int
    step: int


# per simulated profile; profiles not listed do not cache (vLLM, Together, llama.cpp hosts report nothing)
AUTOMATIC: dict[str, CacheRule] = {
    # OpenAI: prompts of >= 1024 tokens, hits in 128-token increments (R2, OpenAI prompt caching guide)
    "openai": CacheRule(1024, 128),
    "openai_hidden": CacheRule(1024, 128),
    # xAI: automatic, no documented minimum; hits measured in 128-token blocks (docs.x.ai prompt caching)
    "xai": CacheRule(128, 128),
    # DeepSeek: context caching on disk in 64-token units; shorter content is not cached (R17 guide)
    "deepseek": CacheRule(64, 64),
    # Gemini 2.5 Flash implicit caching: >= 1024 tokens (R20; 2048 on Pro); Google states no
    # granularity, the simulator counts 64-token blocks
    "gemini": CacheRule(1024, 64),
}
# Anthropic: the shortest prefix a breakpoint caches (Sonnet / Opus; Haiku needs 2048)
EXPLICIT_MINIMUM = 1024
MAX_BREAKPOINTS = 4
LOOKBACK = 20  # blocks checked before each breakpoint for an earlier write


class PendingWrites(NamedTuple):
    """What a request will add to the cache once its first output token leaves."""

    digests: tuple[bytes, ...] = ()


class ExplicitUse(NamedTuple):
    """Tokens an explicitly cached request reads and writes, and its pending writes."""

    read: int
    written: int
    pending: PendingWrites


def _words(tokens: Sequence[int]) -> bytes:
    return array("I", tokens).tobytes()


class PromptCache:
    """Prefix digests written recently, per scope (model and key)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._seen

    def commit(self, pending: PendingWrites) -> None:
        """Make a processed request's prefixes readable."""
        for digest in pending.digests:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def automatic(self, scope: str, tokens: Sequence[int], rule: CacheRule) -> tuple[int, PendingWrites]:
        """Cached prefix length of ``tokens`` under ``rule`` (0, or a multiple of the step at least
        the minimum), and the block prefixes the request writes."""
        if len(tokens) < rule.minimum:
            return 0, PendingWrites()
        running = hashlib.blake2b(scope.encode(), digest_size=16)
        cached = 0
        digests: list[bytes] = []
        for end in range(rule.step, len(tokens) + 1, rule.step):
            running.update(_words(tokens[end - rule.step : end]))
            if end < rule.minimum:
                continue
            digest = running.copy().digest()  # covers the whole prefix up to `end`
            if digest in self._seen:
                cached = end
            digests.append(digest)
        return cached, PendingWrites(tuple(digests))

    def explicit(
        self, scope: str, tokens: Sequence[int], block_ends: Sequence[int], breakpoints: Sequence[int], minimum: int
    ) -> ExplicitUse:
        """Reads and writes of a request whose blocks end at ``block_ends`` (token offsets, ascending)
        with breakpoints on the blocks numbered in ``breakpoints``."""
        if not breakpoints:
            return ExplicitUse(0, 0, PendingWrites())
        running = hashlib.blake2b(scope.encode(), digest_size=16)
        digests: list[bytes] = []
        start = 0
        for end in block_ends:
            running.update(_words(tokens[start:end]))
            digests.append(running.copy().digest())
            start = end
        read = 0
        for point in breakpoints:
            for block in range(point, max(point - LOOKBACK, -1), -1):
                if block_ends[block] > read and digests[block] in self._seen:
                    read = block_ends[block]
                    break
        last = block_ends[max(breakpoints)]
        written = last - read if last >= minimum and last > read else 0
        pending = tuple(digests[p] for p in breakpoints if block_ends[p] >= minimum)
        return ExplicitUse(read, written, PendingWrites(pending))
