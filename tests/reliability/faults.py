"""The fault matrix: one sweep with a lane per fault cell, each lane on a simulator of its own,
and every lane's ledger held to its simulator's counts for its key."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from anytime_sim import SimConfig
from anytime_sim.faults import FaultRates
from anytime_sim.ratelimit import key_digest
from anytime_sim.stats import ModelStats, UsageReport
from runner.ledger.audit import verify
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone
from tests.reliability import AIME, MODELS
from tests.reliability.simhost import SimHost

# the lanes' idle timeout: a stall (30 s) trips it; a trickle's gap stays far under it; and a
# machine shared with other work does not pause a healthy stream this long
IDLE_S = 2.0
TRICKLE_S = 0.2  # a trickle's gap between chunks: a model slowed to about 80 tokens a second


def fault_cells(storm_s: float = 0.25) -> dict[str, FaultRates]:
    """Each fault alone, and all of them mixed, at rates a run survives with 6 attempts a call; in
    the mixed cell every kind is drawn about ten times per 300 requests, so none goes missing."""
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
            rate_limit_storm=0.03,
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
    figures.double = match_reported(figures.lane, attempts, usage)
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


def match_reported(where: str, attempts: list[Attempt], usage: list[UsageReport]) -> int:
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
