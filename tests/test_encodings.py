"""Encodings load offline; one that cannot be loaded falls back visibly or stops, as the manifest says."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.errors import EncodingUnavailable
from runner.ledger.reader import iter_records
from runner.ledger.records import JobDone, Note
from runner.tokens.encodings import encoding_name_for_model, get_encoding, resolve_encoding
from tests.conftest import write_manifest


def test_both_encodings_load_without_the_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    get_encoding.cache_clear()
    assert get_encoding("o200k_base").n_vocab == 200019
    assert get_encoding("cl100k_base").n_vocab == 100277
    assert get_encoding("o200k_harmony").encode_ordinary("hi") == get_encoding("o200k_base").encode_ordinary("hi")


def test_model_names() -> None:
    assert encoding_name_for_model("gpt-4o") == "o200k_base"
    assert encoding_name_for_model("gpt-4") == "cl100k_base"
    assert encoding_name_for_model("openai/gpt-oss-120b") == "o200k_base"
    assert encoding_name_for_model("grok-3-mini") == "o200k_base"  # unknown vendor: the default


def test_unavailable_encoding_falls_back_or_stops() -> None:
    fallback = resolve_encoding("p50k_base", "gpt-4o", "fallback")
    assert fallback.name == "cl100k_base" and fallback.approximate
    assert fallback.warning and "p50k_base" in fallback.warning and "cl100k_base" in fallback.warning
    with pytest.raises(EncodingUnavailable, match="p50k_base"):
        resolve_encoding("p50k_base", "gpt-4o", "stop")


MANIFEST = """
[run]
name = "t"
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0
on_missing_encoding = "{mode}"
[providers.sim]
kind = "sim"
[models.m]
provider = "sim"
model = "sim-cot-small"
encoding = "p50k_base"
[datasets.d]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 1
[sweep]
budgets = [32, 64]
[simulator]
time_scale = 0.0
"""


def test_run_says_so_once_and_marks_counts_approximate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, MANIFEST.format(mode="fallback"))
    assert main(["run", str(path), "--yes", "--plain"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:") and "p50k_base" in line]
    assert len(warnings) == 1, out
    records = list(iter_records(tmp_path / "ledgers" / "t"))
    assert [r for r in records if isinstance(r, Note) and r.kind == "encoding_fallback"]
    assert all(r.approximate_tokens for r in records if isinstance(r, JobDone))


def test_run_stops_before_spending_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, MANIFEST.format(mode="stop"))
    assert main(["run", str(path), "--yes", "--plain"]) == 2
    assert "p50k_base" in capsys.readouterr().err
    assert not (tmp_path / "ledgers" / "t" / "ledger.jsonl").exists()
