"""Batch mode survives `kill -9` at its worst moments, and a resume never submits a batch twice.

The simulator runs in this test's event loop; `anytime run --batch` runs in child processes that
reach it through a loopback proxy (also here). Two kills, with real signals:

1. the first run is killed the moment the simulator answers its first ``POST /v1/batches``: the
   batch exists at the provider, but its id never reached the ledger (only the intent and the
   uploaded request file did);
2. the resume must find that batch by its key rather than submit it again; it is killed in turn
   once it has submitted a batch of its own (its id recorded), while it polls;
3. the last run adopts that one, polls it, and finishes.

Then: the simulator saw no request twice (`KeyBatches.resubmitted` is 0, one batch per intent that
was not lost), every intent ended, `anytime ledger verify` recomputes every dollar at the batch
rates, the ledger's dollars are what the simulator served at batch prices, and the quality
figures equal an uninterrupted batch run's.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import anyio
import msgspec
from anyio.abc import SocketAttribute, SocketStream

from anytime_sim import open_simulator
from anytime_sim.models import SimConfig
from anytime_sim.stats import KeyBatches
from runner.analysis.report import build_report
from runner.config.manifest import Model
from runner.ledger.audit import verify
from runner.ledger.batch_state import batch_history
from runner.ledger.prices import PriceTable, batch_rates, usage_cost
from runner.ledger.reader import iter_records, load_state
from runner.ledger.records import BatchEvent, JobDone
from runner.types import Usage

DATA = Path(__file__).resolve().parent.parent / "data"

MANIFEST = """
[run]
name = "{name}"
seed = 7
ledger_dir = "{ledgers}"
confirm_above_usd = 100.0
mode = "batch"
batch_poll_s = 0.05

[providers.sim]
kind = "sim"
base_url = "{url}/v1"

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
path = "{data}/aime_2024.jsonl"
limit = 3

[sweep]
budgets = [128, 256, 512, 1024]
samples = 1
"""


class KillingProxy:
    """Forwards loopback TCP to the simulator; kills the run when the simulator answers the first
    ``POST /v1/batches`` after `arm`, before the answer reaches it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.victim: int | None = None

    async def handle(self, client: SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream:
            creating = [False]  # this connection's last request created a batch
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._up, client, upstream, tg.cancel_scope, creating)
                tg.start_soon(self._down, upstream, client, tg.cancel_scope, creating)

    async def _up(self, src: SocketStream, dst: SocketStream, scope: anyio.CancelScope, creating: list[bool]) -> None:
        try:
            async for data in src:
                if data.startswith(b"POST "):
                    creating[0] = data.startswith(b"POST /v1/batches ")
                await dst.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()

    async def _down(self, src: SocketStream, dst: SocketStream, scope: anyio.CancelScope, creating: list[bool]) -> None:
        try:
            async for data in src:
                if creating[0] and self.victim is not None:
                    os.kill(self.victim, signal.SIGKILL)  # the batch exists; its id dies with the run
                    self.victim = None
                    return
                await dst.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()


def _child(manifest: str, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from runner.cli import main

    sys.exit(main(["run", manifest, "--yes", "--plain", "--no-report"]))


_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["runner.cli", "runner.cli.run", "runner.engine.sweep", "runner.ledger.estimate"])


def _submitted(run_dir: Path) -> int:
    """Batches whose id a process recorded at submission (found ones not counted)."""
    path = run_dir / "ledger.jsonl"
    if not path.exists():
        return 0
    lines = path.read_bytes().splitlines()
    return sum(1 for line in lines if b'"event":"submitted"' in line and b'"found":false' in line)


async def _run(manifest: Path, log: Path, kill_when: object = None, proxy: KillingProxy | None = None) -> int:
    process = _CONTEXT.Process(target=_child, args=(str(manifest), str(log)))
    process.start()
    assert process.pid is not None
    if proxy is not None:
        proxy.victim = process.pid
    while process.exitcode is None:
        if callable(kill_when) and kill_when():
            os.kill(process.pid, signal.SIGKILL)
            kill_when = None
        await anyio.sleep(0.01)
    if proxy is not None:
        proxy.victim = None
    await anyio.to_thread.run_sync(process.join)
    assert process.exitcode is not None
    return process.exitcode


def _write(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(MANIFEST.format(name=name, ledgers=tmp_path / "ledgers", url=url, data=DATA))
    return path


def _quality(run_dir: Path) -> list[object]:
    (run,) = build_report([run_dir]).runs
    cells = sorted(run.cells, key=lambda c: (c.model, c.method))
    return [(c.model, c.method, msgspec.to_builtins(c.summary), c.exact_final) for c in cells]


def _served_usd(keys: dict[str, KeyBatches]) -> float:
    """What the simulator served in batches, priced at the runner's batch rates."""
    table = PriceTable.load()
    total = 0.0
    for stats in keys.values():
        for model, tokens in stats.models.items():
            price = batch_rates(table.price_for("m", Model(provider="sim", model=model), "sim"))
            assert price is not None
            usage = Usage(
                input_tokens=tokens.input_tokens,
                output_tokens=tokens.output_tokens,
                cached_input_tokens=tokens.cached_input_tokens,
            )
            total += usage_cost(price, usage)
    return total


async def test_kill_before_the_batch_id_is_recorded_and_while_polling_then_resume(tmp_path: Path) -> None:
    config = SimConfig(time_scale=0.01, batch_queue_s=40.0)  # a batch waits 0.4 s in the queue
    async with (
        open_simulator(config, [("aime", DATA / "aime_2024.jsonl")]) as sim,
        await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener,
    ):
        proxy = KillingProxy(int(sim.base_url.rsplit(":", 1)[1]))
        url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            log = tmp_path / "runs.log"
            assert await _run(_write(tmp_path, "reference", sim.base_url), log) == 0, log.read_text()
            before = sim.stats().batch_keys
            manifest = _write(tmp_path, "crash", url)
            run_dir = tmp_path / "ledgers" / "crash"

            assert await _run(manifest, log, proxy=proxy) == -signal.SIGKILL, log.read_text()
            unknown = {s.key for s in batch_history(run_dir).submissions.values() if s.batch_id is None}
            assert unknown  # an intent (and its file) whose batch the simulator made, its id never recorded

            first = _submitted(run_dir)
            code = await _run(manifest, log, kill_when=lambda: _submitted(run_dir) > first)
            assert code == -signal.SIGKILL, log.read_text()
            assert await _run(manifest, log) == 0, log.read_text()
            tg.cancel_scope.cancel()

    records = list(iter_records(run_dir))
    submitted = [r for r in records if isinstance(r, BatchEvent) and r.event == "submitted"]
    found = {r.key for r in submitted if r.found}
    lost = {r.key for r in records if isinstance(r, BatchEvent) and r.event == "lost"}
    # looked up by their keys after the kill: the one the simulator made is found, not sent again;
    # one that never reached it (the kill came first) is lost, and its requests went in a new batch
    assert unknown & found and unknown <= found | lost
    assert not found & {r.key for r in submitted if not r.found}  # a found batch's id was never recorded
    history = batch_history(run_dir)
    assert all(s.ended or s.lost for s in history.submissions.values())
    after = sim.stats().batch_keys
    (key,) = after  # the runs send one stand-in key
    assert after[key].resubmitted == 0, "a request reached the simulator in two batches"
    made = sum(1 for s in history.submissions.values() if not s.lost)
    assert after[key].batches - before[key].batches == made
    done = [r.job_id for r in records if isinstance(r, JobDone)]
    assert len(done) == len(set(done)) == 2 * 3
    result = verify(run_dir)
    assert result.ok, result.render()
    assert _quality(run_dir) == _quality(tmp_path / "ledgers" / "reference")
    usd = load_state(run_dir).total_usd
    served = _served_usd(after) - _served_usd(before)
    assert math.isclose(usd, served, rel_tol=1e-9, abs_tol=1e-9), (usd, served)
