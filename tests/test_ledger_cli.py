"""`anytime ledger summary|export|verify` on ledgers written with the real writer."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import msgspec
import pytest

from runner.cli import main as cli
from runner.ledger.audit import export_csv, summarise, verify
from runner.ledger.prices import ModelPrice, attempt_cost
from runner.ledger.reader import iter_records, ledger_path
from runner.ledger.records import Attempt, JobDone, RunHeader, Snapshot, Synthesis
from runner.ledger.writer import open_ledger
from runner.types import Usage

PRICE = ModelPrice(input=2.0, cached_input=0.5, output=8.0, source="test")


def _attempt(
    call: str, job: str, kind: str = "trace", *, usage: Usage | None = None, counted=(100, 50), attempt: int = 1
) -> Attempt:
    usd, priced_from = attempt_cost(PRICE, usage, *counted)
    return Attempt(
        call_id=call,
        job_id=job,
        kind=kind,
        provider="p",
        model="m",
        attempt=attempt,
        status="ok",
        input_tokens=usage.input_tokens if usage else None,
        cached_input_tokens=usage.cached_input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        billed_usd=usage.billed_usd if usage else None,
        input_tokens_counted=counted[0],
        output_tokens_counted=counted[1],
        priced_from=priced_from,
        usd=usd,
    )


def _done(job: str, problem: str) -> JobDone:
    return JobDone(
        job_id=job,
        instance=f"i-{job}",
        model="m",
        dataset="d",
        problem_id=problem,
        method="cot",
        sample=0,
        fidelity="raw",
        trace_tokens=50,
        trace_finish="stop",
    )


def _snap(job: str, problem: str) -> Snapshot:
    return Snapshot(
        job_id=job,
        instance=f"i-{job}",
        model="m",
        dataset="d",
        problem_id=problem,
        method="cot",
        sample=0,
        budget=256,
        tokens=50,
        answer="1",
        score=1.0,
    )


async def _write(run_dir: Path, extra: list[object] | None = None) -> None:
    header = RunHeader(
        run_id="r",
        tool_version="0",
        started_at=0.0,
        manifest_path="m.toml",
        manifest_sha256="x",
        manifest={},
        prices={"m": msgspec.to_builtins(PRICE)},
    )
    records = [
        header,
        _attempt("c1", "j1", usage=Usage(input_tokens=1200, output_tokens=300, cached_input_tokens=1024)),
        _attempt("c2", "j1", "answer", counted=(400, 16)),  # a cut stream: priced from our count
        _attempt("c3", "j2", usage=Usage(input_tokens=10, output_tokens=10, billed_usd=0.5)),
        _attempt("c4", "j2", "answer", usage=Usage(input_tokens=500, output_tokens=5), attempt=1),
        _attempt("c4", "j2", "answer", usage=Usage(input_tokens=500, output_tokens=5), attempt=2),
        _attempt("c5", "synthesis:k1:p9:0", "synthesis", counted=(300, 256)),
        Synthesis(key="k1", model="m", dataset="d", method="pdp", pool_problem_ids=["p9"], examples=[], text=""),
        _attempt("c6", "j3", counted=(100, 10)),  # a job that never finished
        _snap("j1", "p1"),
        _done("j1", "p1"),
        _snap("j2", "p2"),
        _done("j2", "p2"),
        *(extra or []),
    ]
    async with open_ledger(run_dir) as writer:
        for record in records:
            writer.append(record)  # type: ignore[arg-type]


async def test_verify_accepts_an_honest_ledger(tmp_path: Path) -> None:
    await _write(tmp_path)
    result = verify(tmp_path)
    assert result.ok, result.render()
    assert result.attempts == 7
    assert result.usd_recomputed == pytest.approx(result.usd_recorded)


async def test_verify_catches_a_tampered_dollar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _write(tmp_path)
    path = ledger_path(tmp_path)
    lines = path.read_text().splitlines()
    row = json.loads(lines[1])
    row["usd"] = round(row["usd"] * 0.9, 12)  # someone shaved 10% off one call
    lines[1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    assert cli(["ledger", "verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED (1 problems)")
    assert "line 2: call c1 attempt 1 (trace, job j1)" in out and "from its reported tokens" in out


async def test_verify_catches_duplicates_and_double_completion(tmp_path: Path) -> None:
    await _write(
        tmp_path,
        [
            _attempt("c1", "j1", usage=Usage(input_tokens=1200, output_tokens=300, cached_input_tokens=1024)),
            _done("j1", "p1"),
        ],
    )
    problems = verify(tmp_path).problems
    assert any("duplicate of line 2" in p for p in problems)
    assert any("job j1 completed twice" in p for p in problems)


async def test_verify_catches_missing_numbers_and_unpriced_models(tmp_path: Path) -> None:
    broken = msgspec.structs.replace(_attempt("c9", "j1"), priced_from="reported", input_tokens=None)
    stranger = msgspec.structs.replace(_attempt("c10", "j1"), model="other")
    await _write(tmp_path, [broken, stranger])
    problems = verify(tmp_path).problems
    assert any("priced_from='reported' but the numbers it names are missing" in p for p in problems)
    assert any("model 'other' has no price in the run header" in p for p in problems)


async def test_verify_reports_a_torn_tail_as_a_warning(tmp_path: Path) -> None:
    await _write(tmp_path)
    path = ledger_path(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"type":"attempt","call')
    result = verify(tmp_path)
    assert result.ok
    assert any("torn final line" in w for w in result.warnings)


async def test_summary_per_problem_and_totals(tmp_path: Path) -> None:
    await _write(tmp_path)
    rows = summarise(iter_records(tmp_path))
    by_problem = {r.problem: r for r in rows}
    assert set(by_problem) == {"p1", "p2", "synthesis (pdp)", "unfinished jobs", ""}
    assert by_problem["p1"].calls == {"trace": 1, "answer": 1, "synthesis": 0}
    assert by_problem["p1"].tokens["trace"] == 1500 and by_problem["p1"].tokens["answer"] == 416
    # one answer call, sent twice: "calls" counts calls, "attempts" what was sent (#12.11)
    assert by_problem["p2"].usd["trace"] == 0.5 and by_problem["p2"].calls["answer"] == 1
    assert by_problem["p2"].attempts["answer"] == 2
    total = rows[-1]
    assert total.model == "total" and total.jobs == 2
    assert total.total_usd == pytest.approx(sum(r.total_usd for r in rows[:-1]))
    assert total.total_usd == pytest.approx(verify(tmp_path).usd_recorded)


async def test_summary_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _write(tmp_path)
    assert cli(["ledger", "summary", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["model"] == "total"
    assert rows[-1]["calls"] == {"trace": 3, "answer": 2, "synthesis": 1}
    assert rows[-1]["attempts"] == {"trace": 3, "answer": 3, "synthesis": 1}
    assert cli(["ledger", "summary", str(tmp_path), "--top", "1"]) == 0
    assert "p2" in capsys.readouterr().out  # the most expensive problem (billed $0.50)


async def test_export_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _write(tmp_path)
    buffer = io.StringIO()
    assert export_csv(iter_records(tmp_path), "attempts", buffer) == 7
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert rows[1]["priced_from"] == "counted" and rows[1]["input_tokens"] == ""
    out = tmp_path / "snaps.csv"
    assert cli(["ledger", "export", str(tmp_path), "--csv", "--snapshots", "--out", str(out)]) == 0
    assert [r["problem_id"] for r in csv.DictReader(out.open())] == ["p1", "p2"]


def test_a_folder_without_a_ledger_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["ledger", "verify", str(tmp_path)]) == 2
    assert "no ledger.jsonl here" in capsys.readouterr().err


async def test_verify_catches_a_completed_job_without_snapshots(tmp_path: Path) -> None:
    await _write(tmp_path, [_done("j9", "p9")])
    problems = verify(tmp_path).problems
    assert any("job j9 completed with no snapshot" in p for p in problems)
