"""Issue 12's crash matrix: `kill -9` of a real `anytime run` at 20 random moments of a run of
more than 2,000 calls, resuming each time, then the run held to an uninterrupted one.

The simulator runs in this test's event loop; each sweep runs in a subprocess that reaches it
through a loopback proxy (also here). The proxy counts the bytes the simulator streams back and
sends SIGKILL the moment the count passes a point drawn from the seed, so the kills land in the
middle of streams, ledger batches and synthesis stages alike, with no sleeping and no timing
assumptions. The seed is printed (and set with ``ANYTIME_CRASH_SEED``) so a failure reproduces.

After the last resume (`tests/reliability.py`, `check_crash_run`): every line parses and
`anytime ledger verify` passes (every dollar recomputes, no duplicate attempt, no job completed
twice); no attempt is lost (every request the simulator received is on record); the quality
figures equal the uninterrupted run's; the spend equals the uninterrupted spend plus what the
interrupted executions cost (`RunReport.usd_interrupted`), to 1e-6 $; and the total the last
process printed is the report's and verify's, to 1e-6 $. `bench/soak.py` runs the long version.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute

from anytime_sim.models import SimConfig
from runner.cli import main
from runner.config.manifest import load_manifest
from runner.config.plan import count_jobs
from runner.ledger.reader import load_state
from tests.reliability import AIME, KillingProxy, SimHost, check_crash_run, crash_manifest, run_sweep, served_usd

SEED = int(os.environ.get("ANYTIME_CRASH_SEED", "12"))
KILLS = 20
PROBLEMS, SAMPLES = 20, 7  # 2 models x 2 methods: 560 jobs, about 2,300 calls


@pytest.mark.slow
async def test_kill_9_at_20_random_moments_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\ncrash matrix: seed {SEED} (ANYTIME_CRASH_SEED={SEED} reproduces the kill moments)")
    config = SimConfig(time_scale=0.0, chunk_tokens=16)
    host = await anyio.to_thread.run_sync(SimHost, [config], [("aime", AIME)])
    try:
        crashed, last_log, kills, requests, served = await crash_and_resume(tmp_path, host)
    finally:
        await anyio.to_thread.run_sync(host.close)
    ledgers = tmp_path / "ledgers"
    figures = check_crash_run(
        ledgers / "crashed",
        ledgers / "reference",
        requests=requests,
        served=served,
        last_log=last_log,
        jobs=count_jobs(load_manifest(crashed)),
    )
    assert kills == KILLS and figures.attempts >= 2000 and figures.lost == 0
    assert figures.recovered > 0 and figures.usd_interrupted > 0  # the kills did cut paid work short
    assert main(["ledger", "verify", str(ledgers / "crashed")]) == 0
    assert load_state(ledgers / "crashed").total_usd == pytest.approx(figures.usd_total, abs=1e-6)


async def crash_and_resume(tmp_path: Path, host: SimHost) -> tuple[Path, str, int, int, float]:
    """An uninterrupted run, then the same manifest killed `KILLS` times and resumed to its end,
    both through the proxy: the crashed run's manifest, its last output, the kills made, and the
    requests and served dollars the simulator counted for it."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
        proxy = KillingProxy(int(host.urls[0].rsplit(":", 1)[1]))
        url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            reference = write(tmp_path, "reference", url)
            assert await run_sweep(reference, tmp_path / "reference.log") == 0
            run_bytes = proxy.streamed  # what a whole run streams: kill moments are drawn within it
            crashed = write(tmp_path, "crashed", url)
            before = await anyio.to_thread.run_sync(host.stats, 0)
            jobs = count_jobs(load_manifest(crashed))
            kills = await kill_repeatedly(
                crashed, tmp_path / "crashed.log", proxy, run_bytes, random.Random(SEED), jobs
            )
            last_log = tmp_path / "last.log"
            assert await run_sweep(crashed, last_log) == 0, f"the last resume failed: see {last_log}"
            after = await anyio.to_thread.run_sync(host.stats, 0)
            tg.cancel_scope.cancel()
    requests = after.total("requests") - before.total("requests")
    return crashed, last_log.read_text(), kills, requests, served_usd(before, after)


async def kill_repeatedly(
    manifest: Path, log: Path, proxy: KillingProxy, run_bytes: int, rng: random.Random, jobs: int
) -> int:
    """Run the sweep and kill it at `KILLS` moments spread over the run; the kills made.

    Moment k falls when a fraction f_k (drawn, sorted) of the jobs is done: each process is killed
    after the bytes that much more of the run streams, plus a few percent of a run drawn at random
    (a kill cuts the work in progress short, which the next process streams again).
    """
    fractions = sorted(rng.uniform(0.0, 0.95) for _ in range(KILLS))
    run_dir = manifest.parent / "ledgers" / manifest.stem
    kills = 0
    for fraction in fractions:
        done = len((await anyio.to_thread.run_sync(load_state, run_dir)).completed_jobs) if kills else 0
        ahead = max(0.0, fraction - done / jobs) * run_bytes
        code = await run_sweep(manifest, log, proxy, kill_after=ahead + rng.uniform(0.0, 0.03) * run_bytes)
        if code != -signal.SIGKILL:
            assert code == 0, f"the sweep exited with {code}: see {log}"
            break  # the run finished before its kill moment
        kills += 1
    return kills


def write(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(crash_manifest(name, tmp_path / "ledgers", url, problems=PROBLEMS, samples=SAMPLES))
    return path
