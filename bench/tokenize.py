"""Incremental tokenization cost: a 32,768-token trace fed in 1-, 4- and 64-token chunks.

The trace reads like a reasoning model's: the AIME 2024 solutions in ``../shared/data`` beside the checkout
(English, LaTeX, numbers, some unicode), each opened by a line of thinking-aloud, concatenated
and cut at exactly 32,768 tokens of the encoding under test. Chunks are runs of 1, 4 or 64 of
its tokens, decoded (a run that ends inside a character is merged with the next one, as a
provider's decoded deltas would be).

For each encoding (o200k_base, cl100k_base) it prints:

* ``full``: one ``encode_ordinary`` of the whole trace;
* ``incremental``: `BudgetTokenizer` fed every chunk then finished, budgets 256 × 2^k up to
  32,768 (what a sweep uses); tokens/s and the ratio of its time to ``full``;
* ``naive``: re-encode the whole text so far after every 4-token chunk, the quadratic baseline.
  It is estimated from every ``--naive-stride``-th chunk (the sum over all chunks is the sum over
  the sampled ones times the stride), because running all 8,192 encodes takes a minute; the same
  for the first quarter of the trace shows the growth (16x for 4x the length: quadratic).

Times are CPU time of this process (``time.process_time``), medians over ``--repeats`` runs with
full and incremental runs interleaved, after one warm-up run: the machine is shared, and CPU
time is what other people's load disturbs least. Every run checks the count and the cuts against
``encode_ordinary``.

Usage: ``python bench/tokenize.py [--repeats 7 --naive-stride 64 --trace aime|cjk]`` (``cjk``:
Chinese reasoning sentences and numbers instead, text without ASCII word boundaries). The last line holds
``ratio_1tok=``, ``ratio_4tok=``, ``ratio_64tok=`` (the worse encoding's) and
``ratio_naive_4tok=`` (the better encoding's), then the same per encoding as ``name=value`` pairs.
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the standard library's tokenize, which linecache imports (and
# nearly everything imports linecache), and every script in bench/ runs with this folder first on
# sys.path. Imported under that name, it hands over the real module and defines nothing else;
# run as a script, it takes its folder off the path before importing anything.
if __name__ == "tokenize":
    import importlib.util
    import sysconfig

    _path = os.path.join(sysconfig.get_paths()["stdlib"], "tokenize.py")
    _spec = importlib.util.spec_from_file_location("tokenize", _path)
    if _spec is None or _spec.loader is None:
        raise ImportError(f"the standard library's tokenize is not at {_path}")
    # the import statement returns whatever sys.modules holds once this file has run
    sys.modules["tokenize"] = _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
else:
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    import argparse
    import json
    import statistics
    import time
    from collections.abc import Callable
    from pathlib import Path

    import tiktoken

    from runner.tokens.budget import BudgetTokenizer
    from runner.tokens.encodings import get_encoding

TRACE_TOKENS = 32_768
BUDGETS = [256 * 2**k for k in range(8)]
# the shared data folder sits beside the checkout (as in CI): <parent>/shared/data
SOLUTIONS = str(Path(__file__).resolve().parents[2] / "shared/data/aime/originals/qwen2.5-math/aime24_test.jsonl")
OPENERS = [
    "Okay, let me think about this again.",
    "Wait — that can't be right; let me re-check the arithmetic.",
    "Hmm, so we need the remainder when N is divided by 1000. Let me restate the problem.",
    "Alternatively, maybe there's a cleaner approach ∴ let's try it.",
    "So far: x ≈ 3.14159, and the answer should be an integer in [0, 999].",
]
CJK_SENTENCES = [
    "我们需要计算这个三角形的面积，",
    "然后把结果除以一千。",
    "等一下，这个推理有问题：",
    "所以答案是",
    "首先考虑所有可能的情况，",
    "这样得到的余数应该是",
]


def make_trace(encoding: tiktoken.Encoding, kind: str = "aime") -> str:
    """The trace, exactly TRACE_TOKENS tokens long: AIME solutions with thinking-aloud openers, or
    (``cjk``) Chinese reasoning sentences with numbers, which have no ASCII word boundaries."""
    if kind == "cjk":
        solutions = [f"{sentence}{n * 37 % 1000}" for n, sentence in enumerate(CJK_SENTENCES * 8, 1)]
    else:
        solutions = [json.loads(line)["solution"] for line in Path(SOLUTIONS).read_text().splitlines() if line]
    parts: list[str] = []
    count, i = 0, 0
    while count < TRACE_TOKENS + 64:
        opener = "" if kind == "cjk" else f"\n\n{OPENERS[i % len(OPENERS)]} Step {i + 1}.\n"
        part = f"{opener}{solutions[i % len(solutions)]}"
        parts.append(part)
        count += len(encoding.encode_ordinary(part))
        i += 1
    tokens = encoding.encode_ordinary("".join(parts))[:TRACE_TOKENS]
    trace = encoding.decode_bytes(tokens).decode("utf-8", "ignore")
    if len(encoding.encode_ordinary(trace)) != TRACE_TOKENS:  # a cut character or re-merged tail
        raise SystemExit(f"could not cut the trace at exactly {TRACE_TOKENS} {encoding.name} tokens")
    return trace


def chunk_by_tokens(encoding: tiktoken.Encoding, text: str, size: int) -> list[str]:
    """Decoded runs of ``size`` tokens; a run ending inside a character joins the next one."""
    tokens = encoding.encode_ordinary(text)
    chunks: list[str] = []
    pending = b""
    for start in range(0, len(tokens), size):
        pending += encoding.decode_bytes(tokens[start : start + size])
        try:
            chunks.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = b""
    assert "".join(chunks) == text
    return chunks


def cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def run_incremental(encoding: tiktoken.Encoding, chunks: list[str]) -> BudgetTokenizer:
    tok = BudgetTokenizer(encoding, BUDGETS)
    feed = tok.feed
    for chunk in chunks:
        feed(chunk)
    tok.finish()
    return tok


def check(encoding: tiktoken.Encoding, trace: str, chunks: list[str]) -> None:
    tok = BudgetTokenizer(encoding, BUDGETS)
    cuts = [cut for chunk in chunks for cut in tok.feed(chunk)] + tok.finish()
    tokens = encoding.encode_ordinary(trace)
    assert tok.count == len(tokens), (tok.count, len(tokens))
    for cut in cuts:
        assert encoding.decode(tokens[: cut.budget]).startswith(cut.text), cut.budget


def naive_seconds(encoding: tiktoken.Encoding, chunks: list[str], stride: int) -> float:
    """Estimated CPU time of re-encoding the text so far after every chunk."""
    ends = [0]
    for chunk in chunks:
        ends.append(ends[-1] + len(chunk))
    text = "".join(chunks)
    sampled = range(stride - 1, len(chunks), stride)
    return stride * sum(cpu_seconds(lambda i=i: encoding.encode_ordinary(text[: ends[i + 1]])) for i in sampled)


def bench_encoding(name: str, repeats: int, stride: int, kind: str) -> dict[str, float]:
    encoding = get_encoding(name)
    trace = make_trace(encoding, kind)
    chunked = {size: chunk_by_tokens(encoding, trace, size) for size in (1, 4, 64)}
    for chunks in chunked.values():
        check(encoding, trace, chunks)
        run_incremental(encoding, chunks)  # warm-up
    full_times: list[float] = []
    incremental: dict[int, list[float]] = {size: [] for size in chunked}
    for _ in range(repeats):
        for size, chunks in chunked.items():
            full_times.append(cpu_seconds(lambda: encoding.encode_ordinary(trace)))
            incremental[size].append(cpu_seconds(lambda chunks=chunks: run_incremental(encoding, chunks)))
    full = statistics.median(full_times)
    print(f"# {name}: {len(trace):,} chars, {TRACE_TOKENS:,} tokens; full encode_ordinary {full * 1e3:.2f} ms")
    figures = {"full_ms": round(full * 1e3, 3)}
    for size, times in incremental.items():
        took = statistics.median(times)
        print(
            f"#   {size:>2}-token chunks ({len(chunked[size]):>6,} feeds): {took * 1e3:7.2f} ms, "
            f"{TRACE_TOKENS / took / 1e6:5.2f} M tokens/s, {took / full:5.2f} x full"
        )
        figures[f"ratio_{size}tok"] = round(took / full, 3)
        figures[f"mtok_s_{size}tok"] = round(TRACE_TOKENS / took / 1e6, 3)
    naive = naive_seconds(encoding, chunked[4], stride)
    quarter = naive_seconds(encoding, chunked[4][: len(chunked[4]) // 4], stride)
    print(
        f"#   naive re-encode per 4-token chunk (from every {stride}th): {naive:.2f} s, {naive / full:.0f} x full; "
        f"the first quarter of the trace alone: {quarter:.2f} s ({naive / quarter:.1f}x less: quadratic)"
    )
    figures["ratio_naive_4tok"] = round(naive / full, 1)
    figures["naive_growth_4x_length"] = round(naive / quarter, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--naive-stride", type=int, default=64)
    parser.add_argument("--encodings", default="o200k_base,cl100k_base")
    parser.add_argument("--trace", choices=("aime", "cjk"), default="aime")
    args = parser.parse_args()
    results = {
        name: bench_encoding(name, args.repeats, args.naive_stride, args.trace) for name in args.encodings.split(",")
    }
    worst = {
        key: (min if key == "ratio_naive_4tok" else max)(figures[key] for figures in results.values())
        for key in ("ratio_1tok", "ratio_4tok", "ratio_64tok", "ratio_naive_4tok")
    }
    fields = {**worst}
    for name, figures in results.items():
        short = name.split("_")[0]
        fields.update({f"{key}_{short}": value for key, value in figures.items()})
    print(" ".join(f"{key}={value}" for key, value in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
