"""End-to-end sweeps on the built-in simulator over real loopback HTTP: exact cuts, grading,
resume, retries under faults, rate limits, the spend cap."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from runner.cli import main
from runner.ledger.records import Attempt, JobDone, Record, RunHeader, Snapshot, decode_lines
from tests.conftest import write_manifest

BASE = """
[run]
name = "t"
seed = 3
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0
{run_extra}

[providers.sim]
kind = "sim"
max_concurrency = 16
max_attempts = 8
{provider_extra}

[models.strong]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7

[models.weak]
provider = "sim"
model = "sim-cot-small"
temperature = 0.7

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = {limit}

[sweep]
budgets = [64, 128, 256, 512]
samples = {samples}

[simulator]
time_scale = 0.0
chunk_tokens = 4
{sim_extra}
"""


def manifest(
    tmp_path: Path,
    *,
    limit: int = 4,
    samples: int = 1,
    run_extra: str = "",
    provider_extra: str = "",
    sim_extra: str = "",
) -> Path:
    body = BASE.format(
        limit=limit, samples=samples, run_extra=run_extra, provider_extra=provider_extra, sim_extra=sim_extra
    )
    return write_manifest(tmp_path, body)


def records(tmp_path: Path) -> list[Record]:
    return decode_lines((tmp_path / "ledgers" / "t" / "ledger.jsonl").read_bytes())


def run(path: Path, *extra: str) -> int:
    return main(["run", str(path), "--yes", "--plain", *extra])


def test_sweep_cuts_grades_and_reports(tmp_path: Path) -> None:
    path = manifest(tmp_path, limit=3, samples=2)
    assert run(path) == 0
    recs = records(tmp_path)
    done = [r for r in recs if isinstance(r, JobDone)]
    assert len(done) == 2 * 3 * 2  # models x problems x samples
    snaps = [r for r in recs if isinstance(r, Snapshot)]
    assert len(snaps) == len(done) * 5  # 4 budgets + the full trace
    for s in snaps:
        if s.budget is not None:
            assert s.tokens <= s.budget
            assert 0.0 <= s.score <= 1.0
    # a trace that did not end early is cut at exactly b tokens
    assert any(s.tokens == s.budget for s in snaps if s.budget == 512)
    attempts = [r for r in recs if isinstance(r, Attempt)]
    kinds = Counter(a.kind for a in attempts)
    assert kinds["trace"] == len(done)
    assert 0 < kinds["answer"] <= len(done) * 4
    # a stream cut at the last budget never gets its usage chunk: priced from our own count, not zero
    cancelled = [a for a in attempts if a.status == "cancelled"]
    assert cancelled and all(a.output_tokens is None and a.usd > 0 for a in cancelled)
    assert all(a.priced_from in ("reported", "counted", "billed") for a in attempts)
    report = json.loads((tmp_path / "ledgers" / "t" / "report.json").read_text())
    assert report  # the report was written at the end of the run


def test_rerun_resumes_without_new_calls(tmp_path: Path) -> None:
    path = manifest(tmp_path)
    assert run(path) == 0
    first = records(tmp_path)
    report_first = (tmp_path / "ledgers" / "t" / "report.json").read_text()
    assert run(path) == 0
    second = records(tmp_path)
    new = second[len(first) :]
    assert not [r for r in new if isinstance(r, Attempt)]  # nothing paid twice
    assert next(r for r in new if isinstance(r, RunHeader)).resumed
    assert json.loads((tmp_path / "ledgers" / "t" / "report.json").read_text()) == json.loads(report_first)


def test_changed_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, limit=2)
    assert run(path) == 0
    path.write_text(path.read_text().replace("budgets = [64, 128, 256, 512]", "budgets = [64, 128, 256, 1024]"))
    assert run(path) == 2
    assert "--new-run" in capsys.readouterr().err
    assert run(path, "--new-run") == 0


def test_retries_through_faults(tmp_path: Path) -> None:
    path = manifest(
        tmp_path,
        limit=4,
        sim_extra=(
            "[simulator.faults]\nerror_5xx = 0.15\ndrop_mid_stream = 0.1\nmalformed_chunk = 0.05\n"
            "reset = 0.05\ntrickle = 0.05\ntrickle_seconds = 0.01\n"
        ),
        provider_extra="[providers.sim.timeouts]\nidle = 5.0\n",
    )
    assert run(path) == 0
    recs = records(tmp_path)
    attempts = [r for r in recs if isinstance(r, Attempt)]
    failed = [a for a in attempts if a.status == "error"]
    assert failed, "the fault rates should have produced failed attempts"
    assert {a.error_class for a in failed} <= {"server", "stream_broken", "timeout"}
    assert all(a.attempt >= 1 for a in attempts)
    assert len([r for r in recs if isinstance(r, JobDone)]) == 2 * 4
    # a retried call keeps its failed attempts in the ledger as spend
    call_attempts = Counter(a.call_id for a in attempts)
    assert max(call_attempts.values()) >= 2


def test_spend_cap_at_half_the_estimate_is_never_exceeded(tmp_path: Path) -> None:
    from runner.config.manifest import load_manifest
    from runner.ledger.estimate import estimate_manifest

    probe = manifest(tmp_path, limit=10)
    cap = estimate_manifest(load_manifest(probe)).usd_expected / 2
    path = manifest(tmp_path, limit=10, run_extra=f"max_usd = {cap:.6f}")
    assert run(path) == 3  # stopped by the cap
    attempts = [r for r in records(tmp_path) if isinstance(r, Attempt)]
    assert attempts
    assert sum(a.usd for a in attempts) <= cap
    notes = [r for r in records(tmp_path) if type(r).__name__ == "Note" and r.kind == "stopped"]
    assert notes and "spend cap" in notes[0].message
    # a trace is only started when its forced answers fit too: the money spent finished jobs
    done = [r for r in records(tmp_path) if isinstance(r, JobDone)]
    assert done


def test_stalled_streams_time_out_and_are_retried(tmp_path: Path) -> None:
    path = manifest(
        tmp_path,
        limit=3,
        sim_extra="[simulator.faults]\nstall = 0.3\nstall_seconds = 30.0\n",
        provider_extra="[providers.sim.timeouts]\nidle = 0.4\nfirst_token = 2.0\n",
    )
    assert run(path) == 0
    recs = records(tmp_path)
    attempts = [r for r in recs if isinstance(r, Attempt)]
    stalled = [a for a in attempts if a.error_class == "timeout"]
    assert stalled, "the stall rate should have produced timed-out attempts"
    # a stall of 30 s was cut by the idle watchdog (never before 0.4 s of silence, within 1.5x)
    assert all(a.latency_s < 10 for a in stalled)
    assert len([r for r in recs if isinstance(r, JobDone)]) == 2 * 3
