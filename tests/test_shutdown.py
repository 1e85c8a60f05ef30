"""Ctrl-C / SIGTERM in a real subprocess: stop taking work, keep the ledger whole, say how to resume."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.ledger.records import Attempt, InFlight, JobDone, Note, Record, decode_lines
from tests.conftest import write_manifest

SLOW = """
[run]
name = "t"
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 4

[models.strong]
provider = "sim"
model = "sim-reasoner-large"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 8

[sweep]
budgets = [64, 128, 256, 512]

[simulator]
time_scale = {time_scale}
"""


def start(tmp_path: Path, time_scale: float) -> tuple[subprocess.Popen[str], Path]:
    path = write_manifest(tmp_path, SLOW.format(time_scale=time_scale))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", str(path), "--yes", "--plain", "--grace", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, tmp_path / "ledgers" / "t" / "ledger.jsonl"


def read_until(proc: subprocess.Popen[str], marker: str, deadline_s: float) -> str:
    """The process's output up to ``marker`` (rich flushes each line), read from the pipe's file
    descriptor so that nothing waits in a Python buffer that `communicate` would not see."""
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    end = time.monotonic() + deadline_s
    while marker.encode() not in seen:
        assert time.monotonic() < end, f"no {marker!r} within {deadline_s}s: {seen.decode()}"
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, seen.decode()  # the run ended before saying it
            seen += chunk
    return seen.decode()


def wait_for_attempt(ledger: Path, proc: subprocess.Popen[str], deadline_s: float = 60.0) -> None:
    """Poll (bounded) until the run has sent a request: its in-flight record (the intent, on disk
    before the request goes out) is in the ledger."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        if ledger.exists() and b'"type":"inflight"' in ledger.read_bytes():
            return
        time.sleep(0.05)
    pytest.fail("the run never recorded an attempt")


def parse(ledger: Path) -> list[Record]:
    return decode_lines(ledger.read_bytes())  # the product's codec; a torn last line fails it


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_in_flight_and_resumes(tmp_path: Path, signum: signal.Signals) -> None:
    proc, ledger = start(tmp_path, time_scale=0.2)
    wait_for_attempt(ledger, proc)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Resume with: anytime run" in out
    records = parse(ledger)  # every line parses: nothing torn
    done_before = {r.job_id for r in records if isinstance(r, JobDone)}
    assert len(done_before) < 8
    # from the first signal on, no call started: not a new trace, not an answer, not a retry
    (stop,) = [r for r in records if isinstance(r, Note) and r.kind == "interrupted"]
    late = [a for a in records if isinstance(a, Attempt) and a.started_at > stop.at]
    assert late == [], f"{len(late)} attempts started after the first signal"
    # every attempt that started is settled: its final record is on file, none left in flight
    finals = {(r.call_id, r.attempt) for r in records if isinstance(r, Attempt)}
    assert all((r.call_id, r.attempt) in finals for r in records if isinstance(r, InFlight))
    # resume: the rest is done, nothing twice
    proc2 = subprocess.run(
        [sys.executable, "-m", "runner.cli", "run", str(tmp_path / "m.toml"), "--yes", "--plain"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc2.returncode == 0, proc2.stdout + proc2.stderr
    records = parse(ledger)
    done = [r.job_id for r in records if isinstance(r, JobDone)]
    assert len(done) == len(set(done)) == 8
    calls = [r.call_id for r in records if isinstance(r, Attempt)]
    assert len(calls) == len({(r.call_id, r.attempt) for r in records if isinstance(r, Attempt)})


@pytest.mark.slow
def test_second_sigint_stops_at_once(tmp_path: Path) -> None:
    proc, ledger = start(tmp_path, time_scale=1.0)
    wait_for_attempt(ledger, proc)
    proc.send_signal(signal.SIGINT)
    # the second signal only once the first is handled: two pending SIGINTs are delivered as one
    before = read_until(proc, "finishing in-flight calls", deadline_s=30.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    out = before + out
    assert proc.returncode == 130, out
    assert "twice" in out, out
    records = parse(ledger)
    interrupted = [r for r in records if isinstance(r, Attempt) and r.status == "interrupted"]
    assert interrupted, "in-flight calls cancelled by the second Ctrl-C are still ledgered"
