"""Reports from hand-written ledgers: what counts, what is paid, and the files written."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

from runner.analysis.report import build_report
from runner.cli import main as cli_main
from runner.ledger.records import Attempt, JobDone, Note, RunHeader, Snapshot, Synthesis, encode_line_into
from runner.ui.plot import MISSING_HINT, PlotUnavailable, plot_report
from runner.ui.report import render_markdown
from runner.ui.report_files import write_report

BUDGETS = (256, 512, 1024)
MANIFEST = {
    "run": {"name": "t", "seed": 1, "anytime_mode": "mean_then_max"},
    "methods": {"base": {"kind": "cot"}, "pdp": {"kind": "pdp"}},
}


def _attempt(job: str, call: str, usd: float, *, attempt: int = 1, status: str = "ok", kind: str = "trace") -> Attempt:
    return Attempt(
        call_id=call,
        job_id=job,
        kind=kind,
        provider="sim",
        model="m",
        attempt=attempt,
        status=status,
        input_tokens=100,
        output_tokens=50,
        input_tokens_counted=100,
        output_tokens_counted=55,
        usd=usd,
    )


def _job(
    records: list,
    job: str,
    problem: str,
    method: str,
    curve: list[float],
    instance: str = "i1",
    done: bool = True,
    full: float | None = None,
) -> None:
    for budget, score in zip(BUDGETS, curve, strict=True):
        records.append(
            Snapshot(
                job_id=job,
                instance=instance,
                model="m",
                dataset="d",
                problem_id=problem,
                method=method,
                sample=0,
                budget=budget,
                tokens=budget,
                answer="x",
                score=score,
            )
        )
    if full is not None:
        records.append(
            Snapshot(
                job_id=job,
                instance=instance,
                model="m",
                dataset="d",
                problem_id=problem,
                method=method,
                sample=0,
                budget=None,
                tokens=2000,
                answer="x",
                score=full,
            )
        )
    if done:
        records.append(
            JobDone(
                job_id=job,
                instance=instance,
                model="m",
                dataset="d",
                problem_id=problem,
                method=method,
                sample=0,
                fidelity="raw",
                trace_tokens=1024,
                trace_finish="stop",
            )
        )


def _write_ledger(folder: Path, records: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = RunHeader(
        run_id=folder.name,
        tool_version="0",
        started_at=0.0,
        manifest_path="m.toml",
        manifest_sha256="0",
        manifest=MANIFEST,
        prices={},
    )
    data = bytearray()
    for record in [header, *records]:
        encode_line_into(record, data)
    (folder / "ledger.jsonl").write_bytes(data)
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    records: list = []
    # job a1 crashed once (instance i0, its snapshots must not count), then finished as i1
    _job(records, "a1", "p1", "base", [1.0, 1.0, 1.0], instance="i0", done=False)
    records += [_attempt("a1", "c0", 0.5, status="interrupted")]
    _job(records, "a1", "p1", "base", [0.0, 0.0, 1.0], full=1.0)
    _job(records, "a2", "p2", "base", [0.0, 1.0, 1.0], full=1.0)
    _job(records, "b1", "p1", "pdp", [1.0, 1.0, 1.0], full=1.0)
    _job(records, "b2", "p2", "pdp", [1.0, 1.0, 1.0], full=1.0)
    records += [
        _attempt("a1", "c1", 0.25),
        _attempt("a1", "c1", 0.25, attempt=2),  # a retry: both paid
        _attempt("a2", "c2", 0.5, status="error"),
        _attempt("b1", "c3", 1.0),
        _attempt("b2", "c4", 1.0),
        _attempt("synthesis:K:p9:0", "s1", 2.0, kind="synthesis"),
        _attempt("synthesis:K:p9:1", "s2", 2.0, kind="synthesis", status="cancelled"),
        _attempt("lost-job", "z", 0.125),  # a job that never finished nor left a snapshot
        Synthesis(key="K", model="m", dataset="d", method="pdp", pool_problem_ids=["p9"], examples=[], text=""),
        Note(at=0.0, kind="interrupted", message="x"),
    ]
    return _write_ledger(tmp_path / "run1", records)


def test_only_snapshots_of_the_finished_instance_count(run_dir: Path) -> None:
    (run,) = build_report([run_dir]).runs
    base = next(c for c in run.cells if c.method == "base")
    assert base.summary.quality == pytest.approx((0.0, 0.5, 1.0))  # not the crashed i0's perfect curve
    assert base.summary.full is not None and base.summary.full.value == 1.0


def test_every_attempt_is_paid_and_synthesis_is_amortised(run_dir: Path) -> None:
    (run,) = build_report([run_dir]).runs
    base = next(c for c in run.cells if c.method == "base")
    pdp = next(c for c in run.cells if c.method == "pdp")
    assert run.usd_total == pytest.approx(0.5 + 0.25 * 2 + 0.5 + 1 + 1 + 4 + 0.125)
    assert run.usd_unattributed == pytest.approx(0.125)
    assert base.usd_total == pytest.approx(1.5) and base.retries == 1 and base.calls == 3 and base.attempts == 4
    assert (pdp.usd_eval, pdp.usd_synthesis, pdp.usd_total) == pytest.approx((2.0, 4.0, 6.0))
    assert pdp.synthesis_per_problem == pytest.approx(2.0) and pdp.usd_per_problem == pytest.approx(3.0)
    assert pdp.usd_per_ai_point == pytest.approx(6.0 / 100.0)
    assert base.fidelity == "raw" and base.counted_to_billed == pytest.approx(155 / 150)


def test_paired_difference_against_the_baseline(run_dir: Path) -> None:
    (run,) = build_report([run_dir]).runs
    (paired,) = run.differences
    assert (paired.method, paired.baseline, paired.difference.problems) == ("pdp", "base", 2)
    assert paired.difference.anytime_index.value > 0


def test_files_written(run_dir: Path) -> None:
    report = build_report([run_dir])
    written = write_report(report, run_dir)
    assert {p.name for p in written} >= {"report.json", "report.md", "report.csv"}
    with (run_dir / "report.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 4
    # typed: budgets are integers (the full trace has none), qualities and dollars are numbers
    assert [(r["budget"], r["full_trace"]) for r in rows[:4]] == [
        ("256", "false"),
        ("512", "false"),
        ("1024", "false"),
        ("", "true"),
    ]
    for row in rows:
        float(row["quality"]), float(row["anytime_index"]), float(row["usd_total"]), int(row["problems"])
    data = json.loads((run_dir / "report.json").read_text())
    assert data["runs"][0]["cells"][0]["summary"]["mode"] == "mean_then_max"
    markdown = (run_dir / "report.md").read_text()
    assert "| model | method | n | 256 | 512 | 1k | full | AI | AI 95% CI |" in markdown
    assert "pdp − base" in markdown
    pytest.importorskip("matplotlib")
    assert (run_dir / "anytime.png").read_bytes().startswith(b"\x89PNG")


def test_missing_matplotlib_says_how_to_install(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    with pytest.raises(PlotUnavailable, match=r"pip install 'anytime-runner\[plot\]'"):
        plot_report(build_report([run_dir]), run_dir / "x.png")
    assert "anytime-runner[plot]" in MISSING_HINT
    report = build_report([run_dir])
    written = write_report(report, run_dir)
    assert "anytime.png" not in {p.name for p in written}
    assert report.notes == [f"anytime.png skipped: {MISSING_HINT}"]


def test_cli_says_how_to_install_matplotlib(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli_main(["report", str(run_dir)]) == 0
    assert "pip install 'anytime-runner[plot]'" in capsys.readouterr().out


def test_cli_json_and_compare(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["report", str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["runs"]) == 1 and (run_dir / "report.md").exists()
    other = _write_ledger(tmp_path / "run2", [])
    assert cli_main(["report", str(run_dir), str(other), "--compare"]) == 0
    out = capsys.readouterr().out
    assert "side by side" in out and "run1" in out and "run2" in out


def test_compare_markdown_sets_runs_side_by_side(run_dir: Path, tmp_path: Path) -> None:
    other = _write_ledger(tmp_path / "run2", [])
    text = render_markdown(build_report([run_dir, other], compare=True))
    assert "# Runs side by side" in text


def test_a_folder_without_ledger_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["report", str(tmp_path)]) == 2  # bad input: no run folder there
    assert "no ledger.jsonl here; is this a run folder" in capsys.readouterr().err


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_terminal_tables_fit_the_width_by_leaving_columns_out(run_dir: Path, width: int) -> None:
    from rich.console import Console

    from runner.ui.report import rich_report

    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(rich_report(build_report([run_dir])))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    # every row on one line: quality and cost (base, pdp), then the paired difference (pdp − base)
    rows = [line for line in lines if line.startswith("m ")]
    assert [re.match(r"m\s+(base|pdp)\b", row).group(1) for row in rows] == ["base", "pdp"] * 2 + ["pdp"]  # type: ignore[union-attr]
    left_out = [line for line in lines if line.startswith("left out at this width")]
    if width >= 200:
        assert not left_out
    else:
        assert left_out and all("report.md has every column" in line or line.endswith("…") for line in left_out)
    # what is never left out: names, the Anytime Index, the dollars
    assert all(name in text for name in ("model", "method", " AI ", "$ total"))
