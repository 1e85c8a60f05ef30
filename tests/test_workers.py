"""`anytime run --workers N`: worker processes share one run's jobs, limits, spend cap and ledger.

Real processes on the built-in simulator: a run in two workers gives the same scores as one
process, never more than the key's limit at once (no 429), and survives a worker killed with
`kill -9` (its jobs run elsewhere, nothing is counted twice, `ledger verify` agrees).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute

from runner.cli import main
from runner.cluster.channel import CoordinatorLost, SocketChannel, serve_connection
from runner.cluster.messages import Hello, Leased, Reply, Request
from runner.cluster.sizing import cores, run_workers
from runner.config.manifest import load_manifest
from runner.config.plan import expand_jobs
from runner.errors import ConfigError
from runner.ledger.audit import verify
from runner.ledger.records import Attempt, JobDone, Note, Record, Snapshot, Synthesis, decode_lines
from tests.conftest import write_manifest

RPM = 480  # the key's limit, known to the lane and enforced by the simulator over half-second windows
BURST_S = 0.25

# short traces, many at once, against a requests limit that binds
LIMITED = f"""
[run]
name = "t"
seed = 5
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 16
rpm = {RPM}
burst_s = {BURST_S}

[models.r]
provider = "sim"
model = "sim-reasoner-large"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 4

[methods.cot]
kind = "cot"

[sweep]
budgets = [32, 256]
samples = 1

[simulator]
time_scale = 0.05
chunk_tokens = 4
rpm = {RPM}
limit_window_s = 0.5
"""

# longer traces, so that a worker is killed while its calls stream; a PDP group's synthesis stage
LONG = """
[run]
name = "k"
seed = 3
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 4

[models.r]
provider = "sim"
model = "sim-reasoner-large"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 6
pool = 2

[methods.cot]
kind = "cot"

[methods.pdp]
kind = "pdp"
k = 2
m = 1

[sweep]
budgets = [128, 512]
samples = 1

[simulator]
time_scale = 0.15
chunk_tokens = 4
"""


def records(run_dir: Path) -> list[Record]:
    return decode_lines((run_dir / "ledger.jsonl").read_bytes())


Scores = dict[tuple[str, int | None], tuple[float, str, int]]


def scores(run_dir: Path) -> Scores:
    """Each job's graded cuts: (job id, budget) -> (score, answer, tokens)."""
    done = {r.job_id: r.instance for r in records(run_dir) if isinstance(r, JobDone)}
    return {
        (r.job_id, r.budget): (r.score, r.answer, r.tokens)
        for r in records(run_dir)
        if isinstance(r, Snapshot) and done.get(r.job_id) == r.instance
    }


def most_started_within(attempts: list[Attempt], window_s: float) -> int:
    """The most attempts that started within any ``window_s`` seconds of each other."""
    starts = sorted(a.started_at for a in attempts)
    return max(sum(1 for t in starts[i:] if t < start + window_s) for i, start in enumerate(starts))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], Scores]:
    """The limited manifest run in one process: its planned jobs and its scores."""
    folder = tmp_path_factory.mktemp("single")
    path = write_manifest(folder, LIMITED)
    assert main(["run", str(path), "--yes", "-q", "--workers", "1"]) == 0
    return {j.job_id for j in expand_jobs(load_manifest(path))}, scores(folder / "ledgers" / "t")


def assert_sharded_as_single(tmp_path: Path, single: tuple[set[str], Scores], *flags: str) -> None:
    """The limited manifest run with ``flags``: the single run's scores, within the key's limit."""
    path = write_manifest(tmp_path, LIMITED)
    assert main(["run", str(path), "--yes", "-q", *flags]) == 0
    sharded = tmp_path / "ledgers" / "t"
    planned, expected = single
    assert {job for job, _ in scores(sharded)} == planned
    assert scores(sharded) == expected
    assert verify(sharded).ok, verify(sharded).render()
    attempts = [r for r in records(sharded) if isinstance(r, Attempt)]
    assert [a for a in attempts if a.error_class == "rate_limit"] == []
    # the workers' calls together kept to the key's one limit: a second's share and a burst
    assert most_started_within(attempts, 1.0) <= RPM / 60 + RPM * BURST_S / 60 + 1


def test_two_workers_score_as_one_process_within_the_keys_limit(
    tmp_path: Path, single: tuple[set[str], Scores]
) -> None:
    assert_sharded_as_single(tmp_path, single, "--workers", "2")


def test_ray_actors_on_a_local_cluster_score_as_one_process(tmp_path: Path, single: tuple[set[str], Scores]) -> None:
    ray = pytest.importorskip("ray", reason="Ray cannot be imported here: pip install 'anytime-runner[ray]'")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert_sharded_as_single(tmp_path, single, "--ray", "auto", "--workers", "2")
    finally:
        ray.shutdown()


def children(parent: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of each process whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append((int(entry.name), cmdline))
    return found


def worker_pids(run: int) -> list[int]:
    """The worker processes of `anytime run` (``run``): the children of its fork server."""
    servers = [pid for pid, cmdline in children(run) if b"forkserver" in cmdline]
    return [pid for server in servers for pid, _ in children(server)]


def test_a_worker_killed_mid_run_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, LONG)
    run_dir = tmp_path / "ledgers" / "k"
    ledger = run_dir / "ledger.jsonl"
    log = (tmp_path / "run.log").open("w")
    command = [sys.executable, "-m", "runner.cli", "run", str(path), "--yes", "--plain", "--no-report"]
    command += ["--workers", "2"]
    run = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        # kill a worker once jobs are done and calls are streaming (intents without their attempt)
        while b'"type":"job"' not in (ledger.read_bytes() if ledger.exists() else b""):
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.05)
        victim = worker_pids(run.pid)[0]
        os.kill(victim, signal.SIGKILL)
        assert run.wait(timeout=60) == 0, (tmp_path / "run.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
        log.close()
    kept = records(run_dir)
    lost = [r for r in kept if isinstance(r, Note) and r.kind == "worker_lost"]
    assert len(lost) == 1, (tmp_path / "run.log").read_text()
    planned = {j.job_id for j in expand_jobs(load_manifest(path))}
    done = Counter(r.job_id for r in kept if isinstance(r, JobDone))
    assert set(done) == planned and set(done.values()) == {1}  # every job finished, once
    attempts = Counter((r.call_id, r.attempt) for r in kept if isinstance(r, Attempt))
    assert set(attempts.values()) == {1}  # every attempt recorded once, the killed worker's too
    # the PDP group's preface was built once, by one worker, and the other used it
    assert len([r for r in kept if isinstance(r, Synthesis)]) == 1
    interrupted = [r for r in kept if isinstance(r, Attempt) and r.error_class == "crash"]
    assert f"{len(interrupted)} call(s) ledgered as interrupted" in lost[0].message
    # the killed worker held jobs it had not finished, and another worker ran them
    handed = int(lost[0].message.split(", ")[1].split()[0])
    assert handed >= 1, lost[0].message
    result = verify(run_dir)
    assert result.ok, result.render()
    # the run's total (its last note) is the ledger's, as verify recomputes it
    end = [r for r in kept if isinstance(r, Note) and r.kind == "run_end"][-1]
    assert end.usd_total == pytest.approx(sum(r.usd for r in kept if isinstance(r, Attempt)), abs=1e-9)


def test_workers_below_one_and_ray_without_ray_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_manifest(tmp_path, LIMITED)
    assert main(["run", str(path), "--yes", "-q", "--workers", "0"]) == 2
    assert "--workers: must be a whole number of at least 1, got 0" in capsys.readouterr().err
    body = LIMITED.replace("confirm_above_usd = 100.0", "confirm_above_usd = 100.0\nworkers = 0")
    assert main(["run", str(write_manifest(tmp_path, body, "z.toml")), "--yes", "-q"]) == 2
    assert "z.toml: run: `workers` must be >= 1, got 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without Ray: importing it fails
    assert main(["run", str(path), "--yes", "-q", "--ray"]) == 2
    assert "pip install 'anytime-runner[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "ledgers").exists()  # nothing was spent, nothing was written


def test_a_run_gets_one_worker_per_core_only_when_its_lanes_hold_a_thousand_streams(tmp_path: Path) -> None:
    small = load_manifest(write_manifest(tmp_path, LIMITED))
    assert run_workers(small, None) == 1  # 16 streams at most: one process
    assert run_workers(small, 3) == 3  # --workers wins
    wide = load_manifest(
        write_manifest(tmp_path, LIMITED.replace("max_concurrency = 16", "max_concurrency = 1000"), "w.toml")
    )
    assert run_workers(wide, None) == cores()
    pinned = LIMITED.replace("confirm_above_usd = 100.0", "confirm_above_usd = 100.0\nworkers = 2")
    assert run_workers(load_manifest(write_manifest(tmp_path, pinned, "p.toml")), None) == 2
    batch = load_manifest(
        write_manifest(tmp_path, LIMITED.replace("[providers.sim]", 'mode = "batch"\n\n[providers.sim]'), "b.toml")
    )
    assert run_workers(batch, None) == 1  # batch mode streams nothing
    with pytest.raises(ConfigError, match=r'--workers: batch mode \(run.mode = "batch"\) runs in one process, got 2'):
        run_workers(batch, 2)


async def test_over_tcp_a_worker_without_the_runs_token_is_not_heard(tmp_path: Path) -> None:
    """Ray's workers reach the coordinator over TCP: a hello without the run's token is hung up on."""
    heard: list[int] = []

    class Granting:
        def receive(self, worker: int, body: Request) -> Reply | None:
            heard.append(worker)
            return Leased(1)

        def worker_gone(self, worker: int) -> None:
            pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, functools.partial(serve_connection, Granting(), token="run-secret"))
        for token, worker in (("guess", 1), ("run-secret", 2)):
            channel = SocketChannel(await anyio.connect_tcp("127.0.0.1", port))
            async with anyio.create_task_group() as talk:
                talk.start_soon(_run_quietly, channel)
                try:
                    reply = await channel.ask(Hello(worker, token))
                except CoordinatorLost:
                    reply = None
                talk.cancel_scope.cancel()
            assert (reply is not None) == (token == "run-secret")
        tg.cancel_scope.cancel()
    assert heard == [2]


async def _run_quietly(channel: SocketChannel) -> None:
    try:
        await channel.run()
    except* CoordinatorLost:
        pass  # the hang-up the test expects of a wrong token
