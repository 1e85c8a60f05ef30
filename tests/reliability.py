"""The reliability suite's machinery (issue 12), shared by `tests/test_fault_matrix.py`,
`tests/test_crash_matrix.py` and `bench/soak.py`, which differ only in scale.

- `SimHost`: simulators in a process of their own (one per fault cell, each with its own faults
  and counters), so the sweep under test has a core to itself.
- `fault_manifest` / `check_fault_matrix`: one sweep with a lane per cell; every lane's ledger
  is held to the simulator's own counts for its key (`anytime_sim.stats`).
- `KillingProxy` / `run_sweep` / `check_crash_run`: `kill -9` of a real `anytime run` at moments
  drawn from a seed, then the resumed run held to an uninterrupted one.

Every check raises AssertionError naming what failed and returns the figures it measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import re
import signal
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import msgspec
from anyio.abc import SocketAttribute, SocketStream

from anytime_sim import SimConfig, open_simulator
from anytime_sim.faults import FaultRates
from anytime_sim.ratelimit import key_digest
from anytime_sim.stats import ModelStats, SimStats, UsageReport
from runner.analysis.report import build_report
from runner.ledger.audit import verify
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, Note, Record

REPO = Path(__file__).resolve().parent.parent
AIME = REPO / "data" / "aime_2024.jsonl"
MODELS = {"raw": ("sim-reasoner-large", "raw"), "cot": ("sim-cot-small", "content")}
INTERRUPTED = 130  # the exit code of a run stopped by a signal

# ---- simulators in their own process -----------------------------------------------------------


def _serve(configs: list[SimConfig], datasets: list[tuple[str, str]], conn: Connection) -> None:
    """The child's body: serve every config on its own port until the parent says stop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve_async(configs, datasets, conn))


async def _serve_async(configs: list[SimConfig], datasets: list[tuple[str, str]], conn: Connection) -> None:
    files = [(kind, Path(path)) for kind, path in datasets]
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(open_simulator(config, files)) for config in configs]
        conn.send([sim.base_url for sim in sims])
        with contextlib.suppress(EOFError):
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)


class SimHost:
    """Simulators, one per config, in a child process; their counters over HTTP."""

    def __init__(self, configs: list[SimConfig], datasets: list[tuple[str, Path]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        files = [(kind, str(path)) for kind, path in datasets]
        self.process = context.Process(target=_serve, args=(configs, files, child), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 120
        while not self._conn.poll(0.2):
            if not self.process.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the simulators did not start (exit code {self.process.exitcode})")
        self.urls: list[str] = self._conn.recv()

    def _get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=30) as response:
            body: bytes = response.read()
            return body

    def stats(self, i: int) -> SimStats:
        """Simulator ``i``'s counters once no call is in flight (every handler has counted)."""
        deadline = time.monotonic() + 60
        while True:
            stats = msgspec.json.decode(self._get(self.urls[i] + "/sim/stats"), type=SimStats)
            if stats.in_flight == 0 or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)  # waiting for the server's handlers to end, not timing anything

    def usage(self, i: int) -> list[UsageReport]:
        return msgspec.json.decode(self._get(self.urls[i] + "/sim/usage"), type=list[UsageReport])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def __enter__(self) -> SimHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the fault matrix --------------------------------------------------------------------------

# the lanes' idle timeout: a stall (30 s) trips it; a trickle's gap stays far under it; and a
# machine shared with other work does not pause a healthy stream this long
IDLE_S = 2.0
TRICKLE_S = 0.2  # a trickle's gap between chunks: a model slowed to about 80 tokens a second


def fault_cells(storm_s: float = 0.25) -> dict[str, FaultRates]:
    """Each fault alone, and all of them mixed, at rates a run survives with 6 attempts a call."""
    return {
        "5xx": FaultRates(error_5xx=0.15),
        "storm": FaultRates(rate_limit_storm=0.05, storm_seconds=storm_s),
        "drop": FaultRates(drop_mid_stream=0.15),
        "malformed": FaultRates(malformed_chunk=0.15),
        "stall": FaultRates(stall=0.06, stall_seconds=30.0),
        "trickle": FaultRates(trickle=0.2, trickle_seconds=TRICKLE_S),
        "reset": FaultRates(reset=0.15),
        "mixed": FaultRates(
            error_5xx=0.04,
            drop_mid_stream=0.04,
            malformed_chunk=0.04,
            stall=0.03,
            stall_seconds=30.0,
            rate_limit_storm=0.01,
            storm_seconds=storm_s,
            trickle=0.05,
            trickle_seconds=TRICKLE_S,
            reset=0.04,
        ),
    }


def fault_manifest(
    name: str, ledgers: Path, lanes: dict[str, str], *, problems: int, samples: int, concurrency: int = 32
) -> str:
    """A sweep with one lane per cell (``lanes``: cell -> simulator URL), two models on each."""
    head = f"""
[run]
name = "{name}"
seed = 3
ledger_dir = "{ledgers}"
confirm_above_usd = 1000.0

[datasets.aime]
kind = "aime"
path = "{AIME}"
limit = {problems}

[sweep]
budgets = [32, 64, 128]
samples = {samples}
"""
    parts = [head]
    for lane, url in lanes.items():
        parts.append(f"""
[providers.{lane}]
kind = "sim"
base_url = "{url}/v1"
max_concurrency = {concurrency}
timeouts = {{ first_token = 5.0, idle = {IDLE_S}, total = 120.0 }}
""")
        for suffix, (model, fidelity) in MODELS.items():
            parts.append(f"""
[models.{lane}-{suffix}]
provider = "{lane}"
model = "{model}"
fidelity = "{fidelity}"
temperature = 0.7
""")
    return "".join(parts)


def lane_key(lane: str) -> str:
    """The digest of the key a ``kind = "sim"`` lane sends (`runner.config.keys.api_key_for`)."""
    return key_digest(f"sim-key-{lane}")


def observed_fault(a: Attempt) -> str | None:
    """The simulator fault an attempt's error shows, by how the product classified it."""
    if a.error_class == "rate_limit":
        return "rate_limit"
    if a.error_class == "server" and a.priced_from == "unbilled":
        return "error_5xx"
    if a.error_class == "stream_broken" and a.http_status is None:
        return "reset"
    if a.error_class == "stream_broken":
        return "malformed" if "malformed" in (a.error or "") else "drop"
    if a.error_class == "timeout":
        return "stall"
    return None if a.error_class is None else f"unexpected {a.error_class}"


@dataclass
class LaneFigures:
    """What one lane (one key) did, by the ledger and by the simulator."""

    lane: str
    calls: int = 0  # calls without their retries
    attempts: int = 0
    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)  # by the simulator, per fault kind
    observed: dict[str, int] = field(default_factory=dict)  # by the ledger's error classes
    usage_matched: int = 0
    usage_cut: int = 0  # usage sent after the client had cut the stream at its last budget
    lost: int = 0  # requests or usage reports with no record
    double: int = 0  # records that count one request twice


@dataclass
class MatrixFigures:
    jobs: int
    attempts: int
    lanes: list[LaneFigures]

    def injected(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for lane in self.lanes:
            total.update(lane.injected)
        return dict(sorted(total.items()))

    @property
    def lost(self) -> int:
        return sum(lane.lost for lane in self.lanes)

    @property
    def double(self) -> int:
        return sum(lane.double for lane in self.lanes)


def check_fault_matrix(run_dir: Path, host: SimHost, cells: list[str], jobs: int) -> MatrixFigures:
    """Every job done once, `verify` clean, and each lane's ledger equal to its simulator's counts."""
    records = list(iter_records(run_dir))
    done = [r.job_id for r in records if isinstance(r, JobDone)]
    assert len(done) == len(set(done)) == jobs, f"{len(set(done))} of {jobs} jobs done, {len(done)} records"
    result = verify(run_dir)
    assert result.ok, result.render()
    attempts = [r for r in records if isinstance(r, Attempt)]
    by_lane: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        by_lane[a.provider].append(a)
    lanes = [
        check_lane(cell, by_lane[cell], host.stats(i).keys.get(lane_key(cell), ModelStats()), host.usage(i))
        for i, cell in enumerate(cells)
    ]
    return MatrixFigures(jobs=len(done), attempts=len(attempts), lanes=lanes)


def check_lane(lane: str, attempts: list[Attempt], sim: ModelStats, usage: list[UsageReport]) -> LaneFigures:
    """One lane's ledger against its simulator's counts for its key: requests, 429s, faults
    before the stream, billed prompts and every reported usage, exactly."""
    figures = LaneFigures(lane=lane, attempts=len(attempts), requests=sim.requests, injected=dict(sim.faults))
    figures.calls = len({a.call_id for a in attempts})
    figures.observed = dict(Counter(kind for a in attempts if (kind := observed_fault(a)) is not None))
    figures.lost = max(0, sim.requests - len(attempts))
    assert sim.requests == len(attempts), f"{lane}: the simulator got {sim.requests} requests, {len(attempts)} attempts"
    assert figures.observed.get("rate_limit", 0) == sim.rate_limited, f"{lane}: 429s {figures.observed} vs {sim}"
    for kind in ("error_5xx", "reset"):  # refused before any stream: the client sees every one
        assert figures.observed.get(kind, 0) == sim.faults.get(kind, 0), f"{lane}: {kind} {figures.observed} vs {sim}"
    for kind in ("drop", "malformed", "stall"):  # a client that cut its stream first never sees it
        assert figures.observed.get(kind, 0) <= sim.faults.get(kind, 0), f"{lane}: {kind} {figures.observed} vs {sim}"
    unexpected = [k for k in figures.observed if k.startswith("unexpected")]
    assert not unexpected, f"{lane}: errors no fault explains: {unexpected}"
    billed_input = sum(a.billed_input for a in attempts)
    assert billed_input == sim.input_tokens, f"{lane}: billed prompts {billed_input}, served {sim.input_tokens}"
    _match_usage(figures, attempts, [u for u in usage if u.key == lane_key(lane)])
    return figures


def _match_usage(figures: LaneFigures, attempts: list[Attempt], usage: list[UsageReport]) -> None:
    """Every usage the ledger reports is one the simulator sent, with the same numbers; every usage
    the simulator sent is in the ledger, or went to a stream the client had cut at its budget."""
    figures.double = _match_reported(figures.lane, attempts, usage)
    sent = {u.request_id: u for u in usage}
    by_id = {a.request_id: a for a in attempts if a.request_id is not None}
    figures.usage_matched = sum(1 for a in attempts if a.input_tokens is not None)
    for request_id in sent:
        a = by_id.get(request_id)
        if a is None:
            figures.lost += 1
        elif a.input_tokens is None:
            assert a.status == "cancelled", f"{figures.lane}: {request_id} sent usage, the ledger has none: {a}"
            figures.usage_cut += 1
    assert figures.lost == 0, f"{figures.lane}: {figures.lost} usage reports with no attempt in the ledger"


def _match_reported(where: str, attempts: list[Attempt], usage: list[UsageReport]) -> int:
    """Each provider-reported usage in the ledger equals the one the simulator sent under its
    request id (no request recorded twice); the number of request ids recorded twice."""
    sent = {u.request_id: u for u in usage}
    ids = Counter(a.request_id for a in attempts if a.request_id is not None)
    double = sum(n - 1 for n in ids.values())
    assert not double, f"{where}: request ids recorded twice: {[i for i, n in ids.items() if n > 1]}"
    for a in attempts:
        if a.input_tokens is None:
            continue
        u = sent.get(a.request_id or "")
        assert u is not None, f"{where}: usage of {a.request_id} is in the ledger, never sent"
        reported = (a.input_tokens, a.cached_input_tokens or 0, a.output_tokens, a.reasoning_tokens)
        served = (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens)
        assert reported == served, f"{where}: {a.request_id}: ledger {reported}, simulator {served}"
    return double


def run_fault_matrix(
    tmp_path: Path, cells: dict[str, FaultRates], *, problems: int, samples: int, time_scale: float = 0.0
) -> MatrixFigures:
    """The fault matrix: a simulator per cell in a process of their own, one `anytime run` (in this
    process) with a lane per cell, then every check; the figures."""
    from runner.cli import main

    configs = [SimConfig(time_scale=time_scale, chunk_tokens=16, faults=rates) for rates in cells.values()]
    tmp_path.mkdir(parents=True, exist_ok=True)
    with SimHost(configs, [("aime", AIME)]) as host:
        manifest = tmp_path / "matrix.toml"
        lanes = dict(zip(cells, host.urls, strict=True))
        manifest.write_text(fault_manifest("matrix", tmp_path / "ledgers", lanes, problems=problems, samples=samples))
        code = main(["run", str(manifest), "--yes", "--plain", "--no-report"])
        jobs = len(cells) * len(MODELS) * problems * samples
        figures = check_fault_matrix(tmp_path / "ledgers" / "matrix", host, list(cells), jobs)
    assert code == 0, f"anytime run exited with {code}"
    check_cells_exercised(figures, cells)
    return figures


# what each injected fault shows in the ledger as (a trickle shows nothing: it must not time out)
SEEN_AS = {"rate_limit_storm": "rate_limit", "trickle": None}
RATE_OF = {"drop_mid_stream": "drop", "malformed_chunk": "malformed"}  # rate field -> fault kind


def check_cells_exercised(figures: MatrixFigures, cells: dict[str, FaultRates]) -> None:
    """Each lane suffered exactly the faults its cell injects, and the ledger shows each one."""
    for lane in figures.lanes:
        rates = msgspec.structs.asdict(cells[lane.lane])
        wanted = {RATE_OF.get(name, name) for name, rate in rates.items() if rate and not name.endswith("_seconds")}
        assert wanted == set(lane.injected), f"{lane.lane}: injected {lane.injected}, rates {rates}"
        seen = {SEEN_AS.get(kind, kind) for kind in wanted} - {None}
        assert seen == set(lane.observed), f"{lane.lane}: the ledger shows {lane.observed}, injected {lane.injected}"


# ---- the crash matrix --------------------------------------------------------------------------


def crash_manifest(name: str, ledgers: Path, url: str, *, problems: int, samples: int) -> str:
    """One lane, a reasoning model cut in its reasoning and a chain-of-thought model cut in its
    answer, with cot on both and PDP (a synthesis stage a kill can interrupt) on the second."""
    return f"""
[run]
name = "{name}"
seed = 5
ledger_dir = "{ledgers}"
confirm_above_usd = 1000.0

[providers.sim]
kind = "sim"
base_url = "{url}/v1"
max_concurrency = 16

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
path = "{AIME}"
limit = {problems}
pool = 3

[methods.cot]
kind = "cot"

[methods.pdp]
kind = "pdp"
k = 2
m = 1

[sweep]
budgets = [32, 64, 128]
samples = {samples}
"""


class KillingProxy:
    """Forwards loopback TCP to the simulator; signals the sweep after `kill_after` response bytes
    (SIGKILL, or SIGINT for a stop).

    Counting bytes rather than seconds puts the kill in the middle of streams and ledger batches
    alike, with no sleeping and no timing assumptions.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.victim: int | None = None
        self.kill_after = math.inf
        self.signal = signal.SIGKILL
        self.streamed = 0

    def arm(self, pid: int, kill_after: float, sig: signal.Signals = signal.SIGKILL) -> None:
        self.victim, self.kill_after, self.signal, self.streamed = pid, kill_after, sig, 0

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
                        os.kill(self.victim, self.signal)
                        self.victim = None
                await dst.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()  # one side is gone: close both, as a dead client's socket would


# children fork from a server that has imported the runner and its encoding once
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["tests.sweep_child"])


async def run_sweep(
    manifest: Path,
    log: Path,
    proxy: KillingProxy | None = None,
    kill_after: float = math.inf,
    sig: signal.Signals = signal.SIGKILL,
) -> int:
    """`anytime run` in a child process; its exit code (-9 when the proxy killed it)."""
    from tests.sweep_child import sweep

    process = _CONTEXT.Process(target=sweep, args=(str(manifest), str(log)))
    process.start()
    if proxy is not None:
        assert process.pid is not None
        proxy.arm(process.pid, kill_after, sig)
    await anyio.to_thread.run_sync(process.join)
    if proxy is not None:
        proxy.victim = None
    assert process.exitcode is not None
    return process.exitcode


def quality(run_dir: Path) -> list[object]:
    """The report's quality figures (curves, Anytime Index, intervals): what a crash must not change."""
    (run,) = build_report([run_dir]).runs
    return [
        (c.model, c.dataset, c.method, msgspec.to_builtins(c.summary), c.exact_final, c.exact_full)
        for c in sorted(run.cells, key=lambda c: (c.model, c.dataset, c.method))
    ]


@dataclass
class CrashFigures:
    jobs: int
    attempts: int
    requests: int
    recovered: int  # attempts the resumes recovered from the crashes' in-flight records
    unsent: int  # of those, attempts on record that the simulator never saw (killed before sending)
    lost: int  # requests with no record: must be 0
    usage_matched: int  # provider-reported usages in the ledger, each equal to the one sent
    usd_total: float
    usd_reference: float
    usd_interrupted: float
    usd_difference: float  # |total - (reference + interrupted)|
    usd_totals_gap: float  # the largest gap between printed, report and verify totals
    kills: int = 0  # SIGKILLs made
    stops: int = 0  # SIGINTs made


def check_crash_run(
    run_dir: Path, reference: Path, *, requests: int, usage: list[UsageReport], last_log: str, jobs: int
) -> CrashFigures:
    """A resumed run after kills against the uninterrupted run of the same manifest.

    ``requests`` is what the simulator received during the crashed run, ``usage`` every final
    usage it sent, and ``last_log`` the output of the crashed run's last (uninterrupted) process.
    """
    records: list[Record] = list(iter_records(run_dir))  # every line parses: the resumes cut torn tails
    done = [r.job_id for r in records if isinstance(r, JobDone)]
    assert len(done) == len(set(done)) == jobs, f"{len(set(done))} of {jobs} jobs done, {len(done)} records"
    result = verify(run_dir)
    assert result.ok, result.render()
    attempts = [r for r in records if isinstance(r, Attempt)]
    recovered = [a for a in attempts if a.error_class == "crash"]
    # an intent is durable before its request is sent: a kill in between leaves a record with no
    # request (nothing received); a request with no record would be a lost attempt
    unsent = len(attempts) - requests
    quiet = sum(1 for a in recovered if a.output_tokens_counted == 0)
    assert 0 <= unsent <= quiet, f"{requests} requests, {len(attempts)} attempts, {quiet} recovered with no output"
    _match_reported(run_dir.name, attempts, usage)  # the provider-reported tokens are the simulator's
    assert quality(run_dir) == quality(reference), "the crashes changed the quality figures"
    (run,), (ref,) = build_report([run_dir]).runs, build_report([reference]).runs
    assert run.usd_unattributed == 0.0, f"${run.usd_unattributed:.6f} of attempts belong to no finished job"
    difference = abs(run.usd_total - (ref.usd_total + run.usd_interrupted))
    assert difference <= 1e-6, (
        f"spend ${run.usd_total:.6f} != uninterrupted ${ref.usd_total:.6f} + interrupted ${run.usd_interrupted:.6f}"
    )
    printed = [r for r in records if isinstance(r, Note) and r.kind == "run_end"][-1].usd_total
    assert printed is not None
    gap = max(abs(printed - result.usd_recorded), abs(printed - run.usd_total))
    assert gap <= 1e-6, f"printed ${printed:.6f}, verify ${result.usd_recorded:.6f}, report ${run.usd_total:.6f}"
    assert printed_total(last_log) == _usd_text(printed), f"the last process printed {printed_total(last_log)}"
    return CrashFigures(
        jobs=len(done),
        attempts=len(attempts),
        requests=requests,
        recovered=len(recovered),
        unsent=unsent,
        lost=max(0, requests - len(attempts)),
        usage_matched=sum(1 for a in attempts if a.input_tokens is not None),
        usd_total=run.usd_total,
        usd_reference=ref.usd_total,
        usd_interrupted=run.usd_interrupted,
        usd_difference=difference,
        usd_totals_gap=gap,
    )


@dataclass(frozen=True)
class CrashPlan:
    """A crash matrix: the run's shape, and how many kills (SIGKILL) and stops (SIGINT) to make
    at moments drawn from ``seed``."""

    seed: int
    kills: int
    problems: int
    samples: int
    stops: int = 0


async def run_crash_matrix(tmp_path: Path, plan: CrashPlan) -> CrashFigures:
    """The crash matrix: an uninterrupted run, then the same manifest killed (and stopped) at the
    plan's moments and resumed to its end, then every check; the figures, with the kills and
    stops made (fewer than planned if the run finished first)."""
    config = SimConfig(time_scale=0.0, chunk_tokens=16)
    await anyio.Path(tmp_path).mkdir(parents=True, exist_ok=True)
    host = await anyio.to_thread.run_sync(SimHost, [config], [("aime", AIME)])
    try:
        crashed, last_log, made, requests, usage = await _crash_and_resume(tmp_path, host, plan)
    finally:
        await anyio.to_thread.run_sync(host.close)
    from runner.config.manifest import load_manifest
    from runner.config.plan import count_jobs

    figures = check_crash_run(
        crashed.parent / "ledgers" / "crashed",
        crashed.parent / "ledgers" / "reference",
        requests=requests,
        usage=usage,
        last_log=last_log,
        jobs=count_jobs(load_manifest(crashed)),
    )
    figures.kills, figures.stops = made
    return figures


async def _crash_and_resume(
    tmp_path: Path, host: SimHost, plan: CrashPlan
) -> tuple[Path, str, tuple[int, int], int, list[UsageReport]]:
    """Both runs through the proxy: the crashed run's manifest, its last output, the kills and
    stops made, the requests the simulator received during the crashed run, and every usage it
    sent."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
        proxy = KillingProxy(int(host.urls[0].rsplit(":", 1)[1]))
        url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            reference = _write_crash_manifest(tmp_path, "reference", url, plan)
            assert await run_sweep(reference, tmp_path / "reference.log") == 0
            run_bytes = proxy.streamed  # what a whole run streams: kill moments are drawn within it
            crashed = _write_crash_manifest(tmp_path, "crashed", url, plan)
            before = await anyio.to_thread.run_sync(host.stats, 0)
            moments = KillMoments(random.Random(plan.seed), plan.kills, run_bytes, plan.stops)
            made = await kill_repeatedly(crashed, tmp_path / "crashed.log", proxy, moments)
            last_log = tmp_path / "last.log"
            assert await run_sweep(crashed, last_log) == 0, f"the last resume failed: see {last_log}"
            after = await anyio.to_thread.run_sync(host.stats, 0)
            usage = await anyio.to_thread.run_sync(host.usage, 0)
            tg.cancel_scope.cancel()
    requests = after.total("requests") - before.total("requests")
    return crashed, await anyio.Path(last_log).read_text(), made, requests, usage


def _write_crash_manifest(tmp_path: Path, name: str, url: str, plan: CrashPlan) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(crash_manifest(name, tmp_path / "ledgers", url, problems=plan.problems, samples=plan.samples))
    return path


@dataclass
class KillMoments:
    """Where the kills (and the stops) fall: moment k when a fraction f_k (drawn, sorted) of the
    jobs is done.

    Each process is killed after the bytes that much more of the run streams, plus up to 2% of a
    run drawn at random, so that kills land mid-stream (a kill cuts the work in progress
    short, which the next process streams again). ``stops`` more moments, drawn among them, send
    SIGINT instead: the run stops as after a Ctrl-C (exit 130), which also cuts executions short.
    """

    rng: random.Random
    kills: int
    run_bytes: int
    stops: int = 0

    def plan(self) -> list[tuple[float, signal.Signals]]:
        # up to 85% of the jobs: past that, a process may finish the run before its moment
        moments = sorted(self.rng.uniform(0.0, 0.85) for _ in range(self.kills + self.stops))
        stopping = set(self.rng.sample(range(len(moments)), self.stops))
        return [(f, signal.SIGINT if i in stopping else signal.SIGKILL) for i, f in enumerate(moments)]

    def bytes_until(self, fraction: float, done_fraction: float) -> float:
        return max(0.0, fraction - done_fraction) * self.run_bytes + self.rng.uniform(0.0, 0.02) * self.run_bytes


async def kill_repeatedly(manifest: Path, log: Path, proxy: KillingProxy, moments: KillMoments) -> tuple[int, int]:
    """Run the sweep and signal it at each moment; the kills and the stops made."""
    from runner.config.manifest import load_manifest
    from runner.config.plan import count_jobs
    from runner.ledger.reader import load_state

    jobs = count_jobs(load_manifest(manifest))
    run_dir = manifest.parent / "ledgers" / manifest.stem
    made: Counter[signal.Signals] = Counter()
    expected = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: INTERRUPTED}
    for fraction, sig in moments.plan():
        done = len((await anyio.to_thread.run_sync(load_state, run_dir)).completed_jobs) if made else 0
        kill_after = moments.bytes_until(fraction, done / jobs)
        code = await run_sweep(manifest, log, proxy, kill_after, sig)
        if code != expected[sig]:
            assert code == 0, f"the sweep exited with {code} after {sig.name}: see {log}"
            break  # the run finished before its moment
        made[sig] += 1
    return made[signal.SIGKILL], made[signal.SIGINT]


def printed_total(log: str) -> str:
    """The total the run's closing line printed: ``... spent $0.1 now, $0.2466 in total`` (the
    terminal may have wrapped it)."""
    totals = re.findall(r"spent \$[\d,.]+ now,\s+(\$[\d,.]+) in total", log)
    assert totals, f"no closing line in the run's output:\n{log[-2000:]}"
    return str(totals[-1])


def _usd_text(usd: float) -> str:
    from runner.ui.format import usd as format_usd

    return format_usd(usd)


def name_values(pairs: Iterable[tuple[str, object]]) -> str:
    """One ``name=value`` line."""
    return " ".join(f"{name}={value}" for name, value in pairs)
