"""kill -9 a real `anytime run` while it writes transcripts, resume it, and check nothing written was lost.

The sweep runs in a subprocess (with its built-in simulator); the test waits until the ledger holds
a number of completed jobs drawn from the seed, then sends SIGKILL. After each kill: the transcripts
file holds no damaged member (at most a torn tail), and every job the ledger calls complete has its
whole transcript (the pipeline puts the transcript on disk before the job's completion). After the
last resume every job has one, the file is whole gzip, and `anytime ledger verify` passes.
"""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.analysis.transcripts import iter_transcripts, read_job_transcript, transcript_file_info
from runner.cli import main
from runner.ledger.reader import iter_records
from runner.ledger.records import JobDone
from runner.ledger.transcripts import transcripts_path, walk
from tests.conftest import write_manifest

pytestmark = pytest.mark.slow

MANIFEST = """
[run]
name = "crash"
seed = 11
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 4

[models.raw]
provider = "sim"
model = "sim-reasoner-large"

[models.cot]
provider = "sim"
model = "sim-cot-small"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 3

[sweep]
budgets = [128, 256, 512, 1024]
samples = 2

[simulator]
time_scale = 0.05
chunk_tokens = 8
"""
JOBS = 2 * 3 * 2


def completed(run_dir: Path) -> dict[str, JobDone]:
    if not (run_dir / "ledger.jsonl").exists():
        return {}
    return {r.job_id: r for r in iter_records(run_dir) if isinstance(r, JobDone)}


def run_until_killed(manifest: Path, run_dir: Path, after_jobs: int) -> None:
    """Start `anytime run` and SIGKILL it once the ledger holds ``after_jobs`` more completed jobs."""
    target = len(completed(run_dir)) + after_jobs
    child = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", str(manifest), "--yes", "--plain", "--no-report"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a guard against a hung child, not a timing assertion
        while len(completed(run_dir)) < target:
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()


def check_complete_jobs_have_transcripts(run_dir: Path) -> None:
    walk(transcripts_path(run_dir))  # no damaged member, at most a torn tail
    for job_id, done in completed(run_dir).items():
        transcript = read_job_transcript(run_dir, job_id)
        assert transcript is not None, f"job {job_id} is complete in the ledger but has no transcript"
        assert transcript.complete and transcript.instance == done.instance
        assert all(a.score is not None and a.messages for a in transcript.answers)
        assert transcript.reasoning or transcript.content


def test_kill_9_loses_no_transcript_written(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, MANIFEST)
    run_dir = tmp_path / "ledgers" / "crash"
    rng = random.Random(13)
    for _ in range(2):
        run_until_killed(manifest, run_dir, after_jobs=rng.randint(1, 4))
        check_complete_jobs_have_transcripts(run_dir)
    assert main(["run", str(manifest), "--yes", "--plain", "--no-report"]) == 0
    check_complete_jobs_have_transcripts(run_dir)
    assert len(completed(run_dir)) == JOBS
    assert len(list(iter_transcripts(run_dir))) == JOBS
    assert transcript_file_info(run_dir).torn_bytes == 0
    gzip.decompress(transcripts_path(run_dir).read_bytes())  # one whole multi-member gzip file
    assert main(["ledger", "verify", str(run_dir)]) == 0
