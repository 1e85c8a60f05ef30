"""Every lane busy: lanes of different limits run at the same time, each up to its own limit, and
within a lane the (model, dataset, method) groups take turns. Checked on the ledger's attempts
(when each was admitted and settled), never on how long the run took."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from runner.cli import main
from runner.config.manifest import load_manifest
from runner.config.plan import JobRef, expand_jobs, job_at
from runner.engine.feed import interleave, lane_jobs
from runner.errors import ConfigError
from runner.ledger.records import Attempt, JobDone, decode_lines
from tests.conftest import write_manifest

# two lanes on the built-in simulator: "narrow" admits 2 calls at a time, "wide" 5
BODY = """
[run]
name = "t"
seed = 5
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.narrow]
kind = "sim"
max_concurrency = 2

[providers.wide]
kind = "sim"
max_concurrency = 5

[models.n1]
provider = "narrow"
model = "sim-cot-small"

[models.n2]
provider = "narrow"
model = "sim-gpt-4.1"

[models.w1]
provider = "wide"
model = "sim-cot-small"

[models.w2]
provider = "wide"
model = "sim-gpt-4.1"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 6

[methods.cot]
kind = "cot"

[sweep]
budgets = [64, 128]
samples = 1

[simulator]
time_scale = 0.3
chunk_tokens = 4
"""
CAPS = {"narrow": 2, "wide": 5}


def in_flight(attempts: list[Attempt], provider: str, at: float) -> int:
    """The lane's attempts admitted and not yet settled at ``at``."""
    return sum(
        1 for a in attempts if a.provider == provider and a.started_at <= at < a.started_at + (a.latency_s or 0.0)
    )


def test_lanes_of_different_limits_are_each_full_at_the_same_time(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, BODY)
    assert main(["run", str(path), "--yes", "--plain"]) == 0
    records = decode_lines((tmp_path / "ledgers" / "t" / "ledger.jsonl").read_bytes())
    attempts = [r for r in records if isinstance(r, Attempt)]
    assert {a.provider for a in attempts} == set(CAPS)
    # the limiter's promise, seen in the ledger: never more in flight than the lane's limit
    starts = sorted(a.started_at for a in attempts)
    assert all(in_flight(attempts, lane, t) <= cap for t in starts for lane, cap in CAPS.items())
    # both lanes fed up to their own limit at one and the same moment: neither waited for the other
    assert any(all(in_flight(attempts, lane, t) == cap for lane, cap in CAPS.items()) for t in starts)
    # within a lane the models took turns: the first jobs done hold both models
    for lane, models in (("narrow", {"n1", "n2"}), ("wide", {"w1", "w2"})):
        done = [r.model for r in records if isinstance(r, JobDone) and r.model in models]
        assert len(done) == 12
        assert all(n >= 2 for n in Counter(done[:6]).values()) and set(done[:6]) == models, (lane, done)


def test_a_lanes_groups_take_turns_and_every_job_is_fed_once(tmp_path: Path) -> None:
    body = BODY.replace("[methods.cot]", '[methods.cot2]\nkind = "cot"\n\n[methods.cot]')
    loaded = load_manifest(write_manifest(tmp_path, body))
    jobs = list(lane_jobs(loaded, ["n1", "n2"]))
    groups = [(j.model, j.method) for j in jobs]
    # four groups (2 models x 2 methods), one job each in turn, then the next round
    assert groups[:4] == [("n1", "cot2"), ("n1", "cot"), ("n2", "cot2"), ("n2", "cot")]
    assert groups[4:8] == groups[:4]
    planned = [j for j in expand_jobs(loaded) if j.model in ("n1", "n2")]
    assert sorted(j.job_id for j in jobs) == sorted(j.job_id for j in planned)
    # a job rebuilt from its reference is the same job (how a job can travel by id)
    assert all(job_at(loaded, j.ref) == j for j in jobs)
    with pytest.raises(ConfigError, match=r"m.toml: no job at JobRef\(model='n1'.*index=6\)"):
        job_at(loaded, JobRef("n1", "aime", "cot", 0, 6))  # the dataset's limit is 6 problems


def test_interleave_takes_turns_until_every_source_runs_out() -> None:
    assert list(interleave([iter("ab"), iter(""), iter("wxyz"), iter("1")])) == list("aw1bxyz")
