"""`anytime export`: one typed row per (job, budget) that DuckDB (and sqlite3) read without our code,
and whose numbers give back the report's."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import duckdb
import pytest

from runner.analysis.report import build_report
from runner.cli import main
from tests.conftest import write_manifest

MANIFEST = """
[run]
name = "x"
seed = 4
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0
{run_extra}

[providers.sim]
kind = "sim"
max_concurrency = 16

[models.raw]
provider = "sim"
model = "sim-reasoner-large"

[models.cot]
provider = "sim"
model = "sim-cot-small"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 4

[sweep]
budgets = [128, 512, 1024]
samples = 2

[simulator]
time_scale = 0.0
chunk_tokens = 4
"""
ROWS = 2 * 4 * 2 * (3 + 1)  # models x problems x samples x (budgets + the full trace)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    assert main(["run", str(write_manifest(tmp, MANIFEST.format(run_extra=""))), "--yes", "--plain"]) == 0
    return tmp / "ledgers" / "x"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_duckdb_reads_the_export_typed_and_it_gives_back_the_report(run_dir: Path, fmt: str) -> None:
    assert main(["export", str(run_dir), "--format", fmt]) == 0
    path = run_dir / f"export.{fmt}"
    db = duckdb.connect()
    types = dict(db.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{path}')").fetchall())
    assert types["score"] == "DOUBLE" and types["budget"] == "BIGINT" and types["sample"] == "BIGINT"
    assert types["reused"] == "BOOLEAN" and types["answer_usd"] == "DOUBLE" and types["cut_tokens"] == "BIGINT"
    assert db.execute(f"SELECT count(*) FROM '{path}'").fetchone() == (ROWS,)
    # Q(b): mean over problems of the mean over samples, exactly as the report computes it
    quality = db.execute(
        f"""SELECT model, budget, avg(q) FROM (
              SELECT model, budget, problem_id, avg(score) AS q FROM '{path}' WHERE budget IS NOT NULL GROUP BY ALL
            ) GROUP BY ALL"""
    ).fetchall()
    report = build_report([run_dir]).runs[0]
    expected = {
        (cell.model, budget): q
        for cell in report.cells
        for budget, q in zip(cell.summary.budgets, cell.summary.quality, strict=True)
    }
    assert {(m, b): pytest.approx(q) for m, b, q in quality} == expected
    spend = db.execute(f"SELECT sum(job_usd) FROM (SELECT DISTINCT job_id, job_usd FROM '{path}')").fetchone()
    assert spend is not None and spend[0] == pytest.approx(report.usd_total)
    texts = db.execute(f"SELECT count(gold), count(answer_text) FROM '{path}' WHERE budget IS NOT NULL")
    assert texts.fetchone() == (ROWS * 3 // 4, ROWS * 3 // 4)  # every cut's forced answer, from the transcripts


def test_sqlite_export_keeps_types(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.sqlite"
    assert main(["export", str(run_dir), "--format", "sqlite", "--out", str(out)]) == 0
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT count(*) FROM answers").fetchone() == (ROWS,)
        kinds = db.execute("SELECT DISTINCT typeof(score), typeof(sample), typeof(reused) FROM answers").fetchall()
        assert kinds == [("real", "integer", "integer")]
        nulls = db.execute("SELECT count(*) FROM answers WHERE budget IS NULL").fetchone()
    assert nulls == (2 * 4 * 2,)
    db.close()


def test_export_without_transcripts_leaves_their_columns_null(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, MANIFEST.format(run_extra="transcripts = false"))
    assert main(["run", str(manifest), "--yes", "--plain", "--no-report"]) == 0
    run_dir = tmp_path / "ledgers" / "x"
    assert main(["export", str(run_dir), "--format", "jsonl"]) == 0
    db = duckdb.connect()
    row = db.execute(f"SELECT count(*), count(gold), count(score) FROM '{run_dir / 'export.jsonl'}'").fetchone()
    assert row == (ROWS, 0, ROWS)


def test_parquet_without_pyarrow_says_how_to_install_it(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    out = tmp_path / "x.parquet"
    assert main(["export", str(run_dir), "--format", "parquet", "--out", str(out)]) == 2
    assert "pip install 'anytime-runner[parquet]'" in capsys.readouterr().err
    assert not out.exists()


def test_bad_run_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path), "--format", "csv"]) == 2
    assert "no ledger.jsonl here" in capsys.readouterr().err
