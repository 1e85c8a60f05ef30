"""Issue 5's crash test: SIGKILL a real `anytime run` at random points, resume, and reconcile.

The simulator runs in this test's event loop; the sweep runs in a subprocess that reaches it
through a loopback proxy (also here). The proxy counts the bytes the simulator streams back and
sends SIGKILL the moment the count passes a point drawn from the seed, so the kill lands in the
middle of streams and ledger batches alike, with no sleeping and no timing assumptions.

After each crashed sequence the run is resumed to completion and checked: every ledger line
parses, `anytime ledger verify` passes (every dollar recomputes, no duplicate attempt, no job
completed twice), the report's quality figures equal an uninterrupted run's, and the ledger's
dollars equal the simulator's own count of the tokens it served, priced, to the cent.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import signal
import sys
from pathlib import Path

import anyio
import msgspec
import pytest
from anyio.abc import SocketAttribute, SocketStream

from anytime_sim import Simulator, open_simulator
from anytime_sim.models import SimConfig
from anytime_sim.stats import SimStats
from runner.analysis.report import build_report
from runner.ledger.audit import verify
from runner.ledger.prices import PriceTable, usage_cost
from runner.ledger.reader import iter_records, load_state
from runner.ledger.records import Attempt, JobDone, Note
from runner.types import Usage

DATA = Path(__file__).resolve().parent.parent / "data"
# the dearest call here: a reasoner trace prompt plus its whole cap (1024 + 512) at sim-cot-small's
# output price, or a forced answer holding a 1024-token cut: ~$0.0013; rounded up
WORST_CALL_USD = 0.002
MODELS = {"strong": ("sim-reasoner-large", "raw"), "weak": ("sim-cot-small", "content")}

MANIFEST = """
[run]
name = "{name}"
seed = 5
ledger_dir = "{ledgers}"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
base_url = "{url}/v1"
max_concurrency = 8

[models.strong]
provider = "sim"
model = "sim-reasoner-large"
fidelity = "raw"
temperature = 0.7

[models.weak]
provider = "sim"
model = "sim-cot-small"
fidelity = "content"
temperature = 0.7

[datasets.aime]
kind = "aime"
path = "{data}/aime_2024.jsonl"
limit = 5

[sweep]
budgets = [128, 256, 512, 1024]
samples = 1
"""


class KillingProxy:
    """Forwards loopback TCP to the simulator; kills the sweep after `kill_after` response bytes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.victim: int | None = None
        self.kill_after = math.inf
        self.streamed = 0

    def arm(self, pid: int, kill_after: float) -> None:
        self.victim, self.kill_after, self.streamed = pid, kill_after, 0

    async def handle(self, client: SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pump, client, upstream, tg.cancel_scope, False)
                tg.start_soon(self._pump, upstream, client, tg.cancel_scope, True)

    async def _pump(self, src: SocketStream, dst: SocketStream, scope: anyio.CancelScope, downstream: bool) -> None:
        try:
            async for data in src:
                if downstream:
                    self.streamed += len(data)
                    if self.victim is not None and self.streamed >= self.kill_after:
                        os.kill(self.victim, signal.SIGKILL)
                        self.victim = None
                await dst.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()  # one side is gone: close both, as a dead client's socket would


def _sweep_child(manifest: str, log: str) -> None:
    """The child's body: `anytime run` with its output in the log file (the parent only kills it)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from runner.cli import main

    sys.exit(main(["run", manifest, "--yes", "--plain", "--no-report"]))


# children fork from a server that has imported the runner once: a sweep starts in milliseconds
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["runner.cli", "runner.cli.run", "runner.engine.sweep", "runner.ledger.estimate"])


async def run_sweep(manifest: Path, log: Path, proxy: KillingProxy | None = None, kill_after: float = math.inf) -> int:
    process = _CONTEXT.Process(target=_sweep_child, args=(str(manifest), str(log)))
    process.start()
    if proxy is not None:
        assert process.pid is not None
        proxy.arm(process.pid, kill_after)
    await anyio.to_thread.run_sync(process.join)
    if proxy is not None:
        proxy.victim = None
    assert process.exitcode is not None
    return process.exitcode


def served_usd(before: SimStats, after: SimStats) -> float:
    """The simulator's served tokens between two snapshots, priced by the runner's own `usage_cost`."""
    table = PriceTable.load()
    total = 0.0
    for model_id, _fidelity in MODELS.values():
        price = table.lookup("sim", model_id)
        assert price is not None and price.cached_input is not None
        a, b = after.models.get(model_id), before.models.get(model_id)
        if a is None:
            continue
        inp = a.input_tokens - (b.input_tokens if b else 0)
        cached = a.cached_input_tokens - (b.cached_input_tokens if b else 0)
        out = a.output_tokens - (b.output_tokens if b else 0)
        total += usage_cost(price, Usage(input_tokens=inp, output_tokens=out, cached_input_tokens=cached))
    return total


def quality(run_dir: Path) -> list[object]:
    """The report's quality figures (curves, Anytime Index, intervals): what a crash must not change."""
    (run,) = build_report([run_dir]).runs
    return [
        (c.model, c.dataset, c.method, msgspec.to_builtins(c.summary), c.exact_final, c.exact_full)
        for c in sorted(run.cells, key=lambda c: (c.model, c.dataset, c.method))
    ]


def write(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(MANIFEST.format(name=name, ledgers=tmp_path / "ledgers", url=url, data=DATA))
    return path


@pytest.mark.slow
async def test_sigkill_at_random_points_then_resume_reconciles(tmp_path: Path) -> None:
    config = SimConfig(time_scale=0.05, chunk_tokens=16)  # fast, yet a kill cuts streams mid-way
    async with (
        open_simulator(config, [("aime", DATA / "aime_2024.jsonl")]) as sim,
        await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener,
    ):
        proxy = KillingProxy(int(sim.base_url.rsplit(":", 1)[1]))
        proxy_url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            before = sim.stats()
            assert await run_sweep(write(tmp_path, "reference", sim.base_url), tmp_path / "ref.log") == 0
            reference = tmp_path / "ledgers" / "reference"
            ref_usd = load_state(reference).total_usd
            # the uninterrupted run: its ledger holds what the simulator served, to the cent
            assert ref_usd == pytest.approx(served_usd(before, sim.stats()), abs=0.01)
            for seed in (1, 2, 3):
                await crash_and_resume(tmp_path, seed, sim, proxy, proxy_url, reference)
            tg.cancel_scope.cancel()


async def crash_and_resume(
    tmp_path: Path,
    seed: int,
    sim: Simulator,
    proxy: KillingProxy,
    url: str,
    reference: Path,
) -> None:
    rng = random.Random(seed)
    name = f"crash{seed}"
    manifest, log = write(tmp_path, name, url), tmp_path / f"{name}.log"
    run_dir = tmp_path / "ledgers" / name
    before = sim.stats()
    kills = 0
    for _ in range(rng.randint(1, 2)):
        code = await run_sweep(manifest, log, proxy, kill_after=rng.randint(2_000, 60_000))
        kills += code == -signal.SIGKILL
    assert kills >= 1, log.read_text()
    assert await run_sweep(manifest, log) == 0, log.read_text()
    records = list(iter_records(run_dir))  # every line parses (the resumes cut any torn tail)
    done = [r.job_id for r in records if isinstance(r, JobDone)]
    assert len(done) == len(set(done)) == 2 * 5  # models x problems, each once
    result = verify(run_dir)
    assert result.ok, result.render()
    # the total the last process printed counts the spend the last crash left in flight: it is
    # the ledger's, the report's and verify's, to the micro-dollar
    printed = [r for r in records if isinstance(r, Note) and r.kind == "run_end"][-1].usd_total
    assert printed == pytest.approx(result.usd_recorded, abs=1e-6)
    assert printed == pytest.approx(build_report([run_dir]).runs[0].usd_total, abs=1e-6)
    assert quality(run_dir) == quality(reference)
    # no attempt is lost: every request that reached the simulator has its record in the ledger
    requests = sim.stats().total("requests") - before.total("requests")
    attempts = sum(isinstance(r, Attempt) for r in records)
    assert attempts >= requests, f"{requests} requests reached the simulator, {attempts} attempts in the ledger"
    usd = load_state(run_dir).total_usd
    served = served_usd(before, sim.stats())
    gap = served - usd
    assert gap >= -0.001, "the ledger counts more than the simulator served"
    # calls streaming at a kill were ledgered from their in-flight records (the lane tracks every
    # call it streams), so even the killed runs' spend is in the ledger: to the cent
    assert abs(gap) <= 0.01, f"ledger ${usd:.6f}, served ${served:.6f}, {kills} kills"
