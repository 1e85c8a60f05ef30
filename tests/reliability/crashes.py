"""The crash matrix: an uninterrupted run, then the same manifest killed (and stopped) at moments
drawn from a seed and resumed each time, then the resumed run held to the uninterrupted one."""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import re
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
from anyio.abc import SocketAttribute, SocketStream

from anytime_sim import SimConfig
from anytime_sim.stats import UsageReport
from runner.analysis.report import build_report
from runner.ledger.audit import verify
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, Note, Record, Reuse, Synthesis
from runner.ui.format import usd as format_usd
from tests.reliability import AIME
from tests.reliability.faults import match_reported
from tests.reliability.simhost import SimHost

INTERRUPTED = 130  # the exit code of a run stopped by a signal


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
    usd_interrupted: float  # the report's spend lost to interruption
    usd_difference: float  # |total + reused - (reference + superseded + drift)|
    usd_totals_gap: float  # the largest gap between printed, report and verify totals
    usd_reused: float = 0.0  # calls the completing executions took from paid ones instead of paying
    usd_superseded: float = 0.0  # what the executions cut short paid
    kills: int = 0  # SIGKILLs made
    stops: int = 0  # SIGINTs made


def cancelled_drift(run: list[Attempt], reference: list[Attempt]) -> float:
    """What the streams the client cancelled (a trace past its last budget) cost more in ``run``
    than in ``reference``, call by call.

    Such a stream is billed for the tokens that had arrived when it was cancelled, and the lane
    reads whatever bytes have arrived in one go, so that count may differ by a read's worth of
    tokens between two runs of the same manifest: the one part of the spend that depends on
    timing. Everything else must agree to the micro-dollar."""

    def cancelled(attempts: list[Attempt]) -> dict[tuple[str, str, int | None], float]:
        final = {(a.job_id, a.kind, a.budget): a for a in attempts if a.status != "interrupted"}
        return {key: a.usd for key, a in final.items() if a.status == "cancelled"}

    ours, theirs = cancelled(run), cancelled(reference)
    return sum(usd - theirs[key] for key, usd in ours.items() if key in theirs)


def completed_executions(records: list[Record]) -> Callable[[Attempt], bool]:
    """Whether an attempt was paid by the execution that completed its job or synthesis stage."""
    done = {r.job_id: r.instance for r in records if isinstance(r, JobDone)}
    stages = {f"synthesis:{r.key}": r.instance for r in records if isinstance(r, Synthesis)}

    def completed(a: Attempt) -> bool:
        stage = ":".join(a.job_id.split(":", 2)[:2])
        return a.instance is None or a.instance in (done.get(a.job_id), stages.get(stage))

    return completed


def reused_sources(records: list[Record]) -> list[Attempt]:
    """The paid attempts behind the calls that the executions completing their jobs (and synthesis
    stages) took from calls an earlier process had paid for (docs/reuse.md): each source's last
    attempt, the one that served (its failed attempts stay lost to the interruption), whether it
    was an execution a kill cut short (its cost is in the interrupted spend) or another job's that
    shares the trace (in that job's). Calls a killed execution reused are left out: neither paid
    there nor counted in the interrupted spend."""
    done = {(r.job_id, r.instance) for r in records if isinstance(r, JobDone)}
    stages = {(r.key, r.instance) for r in records if isinstance(r, Synthesis)}
    last: dict[str, Attempt] = {}
    for a in records:
        if isinstance(a, Attempt) and a.attempt >= (last[a.call_id].attempt if a.call_id in last else 0):
            last[a.call_id] = a
    reuses = {r.call_id: r for r in records if isinstance(r, Reuse) and r.mode == "served"}

    def paid(call_id: str) -> Attempt:  # a source may itself be a reused call: follow it to the paid one
        return last[call_id] if call_id in last else paid(reuses[call_id].source_call_id)

    return [  # each as the call of the job that reused it (its source may be another job's: pdp's trace can be cot's)
        msgspec.structs.replace(paid(r.source_call_id), job_id=r.job_id, instance=r.instance)
        for r in reuses.values()
        if (r.job_id, r.instance) in done
        or (r.job_id.startswith("synthesis:") and (r.job_id.split(":", 2)[1], r.instance) in stages)
    ]


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
    match_reported(run_dir.name, attempts, usage)  # the provider-reported tokens are the simulator's
    assert quality(run_dir) == quality(reference), "the crashes changed the quality figures"
    (run,), (ref,) = build_report([run_dir]).runs, build_report([reference]).runs
    assert run.usd_unattributed == 0.0, f"${run.usd_unattributed:.6f} of attempts belong to no finished job"
    # a resume reuses the calls its killed processes completed: what they cost there is in the
    # interrupted spend, and the run did not pay for them again (the served ones count last, as
    # the calls the completed executions used)
    # a resume reuses the calls its killed processes completed (and another job's, when their trace
    # is the same: pdp's trace can be cot's): each job that took a call did not pay for it here
    sources = reused_sources(records)
    reused = sum(a.usd for a in sources)
    completed = completed_executions(records)
    superseded = sum(a.usd for a in attempts if not completed(a))
    drift = cancelled_drift([*attempts, *sources], [r for r in iter_records(reference) if isinstance(r, Attempt)])
    difference = abs(run.usd_total + reused - (ref.usd_total + superseded + drift))
    assert difference <= 1e-6, (
        f"spend ${run.usd_total:.6f} + reused ${reused:.6f} != uninterrupted ${ref.usd_total:.6f} + spent by"
        f" executions cut short ${superseded:.6f} + cancelled streams' drift ${drift:.6f}"
    )
    # of what the executions cut short paid, what a completing one used is not lost to the interruption
    paid_by = {(a.call_id, a.attempt): a for a in attempts}
    used = {(a.call_id, a.attempt) for a in sources}
    used_again = {key: paid_by[key].usd for key in used if not completed(paid_by[key])}
    lost = superseded - sum(used_again.values()) - run.usd_failed
    assert abs(run.usd_interrupted - lost) <= 1e-6, f"lost to interruptions ${run.usd_interrupted:.6f}, not ${lost:.6f}"
    printed = [r for r in records if isinstance(r, Note) and r.kind == "run_end"][-1].usd_total
    assert printed is not None
    gap = max(abs(printed - result.usd_recorded), abs(printed - run.usd_total))
    assert gap <= 1e-6, f"printed ${printed:.6f}, verify ${result.usd_recorded:.6f}, report ${run.usd_total:.6f}"
    assert printed_total(last_log) == format_usd(printed), f"the last process printed {printed_total(last_log)}"
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
        usd_reused=reused,
        usd_superseded=superseded,
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

    Each process is killed after the bytes that much more of the run streams, plus up to 1% of a
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
        return max(0.0, fraction - done_fraction) * self.run_bytes + self.rng.uniform(0.0, 0.01) * self.run_bytes


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
