"""Building the report from run folders: the ledger alone decides what counts and what was paid.

What counts:
- snapshots only of the execution a `JobDone` names (``job_id`` and ``instance``): a crashed
  partial execution's snapshots are ignored, its attempts are not (they were paid);
- spend is the sum of every `Attempt.usd` (failed, cancelled and retried attempts included);
- of it, the spend of executions that did not complete their job or synthesis stage, where
  another execution then did, is shown apart: lost to interruption (a crash, a stop) or to
  failure (an execution the ledger notes as failed after its retries);
- synthesis attempts (PDP / LEAP) are charged to their (model, dataset, method) through the
  `Synthesis` record's key, reported in total and amortised per evaluated problem;
- reused calls (`Reuse` records) are not spend: their cost stays in the ledger of the run that
  paid for them; the report counts them and the dollars they saved apart (`ReuseSummary`).

"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

from runner.analysis.anytime import (
    CurveBands,
    CurveSummary,
    Difference,
    Mode,
    ScoreTable,
    curve_bands,
    paired_difference,
    summarize,
)
from runner.analysis.compare import RunComparison, RunScores, compare_scores
from runner.analysis.costs import usd_at_budgets
from runner.errors import LedgerError
from runner.ledger.records import Attempt, JobDone, Note, Record, Reuse, RunHeader, Snapshot, Synthesis, decode_line

Key = tuple[str, str, str]  # (model, dataset, method) keys of the manifest
# problem id -> sample -> budget (None: the full trace) -> score, as the run recorded it
_Table = dict[str, dict[int, dict[int | None, float]]]
BASELINE_METHOD_KINDS = ("cot",)
FAILURE_NOTES = ("job_failed", "synthesis_failed")  # notes naming an execution that failed


class Cell(msgspec.Struct, kw_only=True):
    """One (model, dataset, method) row of the report."""

    model: str
    dataset: str
    method: str
    summary: CurveSummary
    exact_final: float | None  # trip planning: official exact match at the last budget
    exact_full: float | None
    usd_eval: float  # trace and answer calls of the evaluated problems
    usd_synthesis: float  # PDP / LEAP preference data, built once
    usd_total: float
    usd_per_problem: float  # everything, amortised over the evaluated problems
    synthesis_per_problem: float
    usd_per_ai_point: float | None
    input_tokens: int
    output_tokens: int
    calls: int
    attempts: int
    retries: int  # attempts after the first of their call
    fidelity: str
    counted_to_billed: float | None  # our token count over the provider's, where both exist
    approximate_tokens: bool
    # the plots' bands: Q(b) and its running best with 95% bootstrap intervals over problems
    bands: CurveBands | None = None
    # mean dollars per trace to answer at each budget (prompt, output up to b, one forced answer)
    usd_at_budget: tuple[float, ...] = ()


class Paired(msgspec.Struct, kw_only=True):
    """A method minus the baseline on the same model, dataset and problems."""

    model: str
    dataset: str
    method: str
    baseline: str
    difference: Difference


class ReuseSummary(msgspec.Struct, kw_only=True):
    """What a run took from calls already paid for (docs/reuse.md), from its `Reuse` records."""

    traces: int = 0  # traces served whole from a stored one
    continued: int = 0  # stored traces continued past their end (the continuation was paid)
    requested: int = 0  # stored traces that could not serve: requested again
    answers: int = 0  # other calls served (forced answers, hidden budgets, LEAP's principles)
    usd_not_spent: float = 0.0
    sources: list[str] = msgspec.field(default_factory=list)  # the run folders they came from

    @classmethod
    def of(cls, records: Iterable[Reuse]) -> ReuseSummary:
        out = cls()
        for r in records:
            if r.mode == "requested":
                out.requested += 1
                continue
            if r.mode == "continued":
                out.continued += 1
            elif r.key.startswith("t"):  # a trace key (a call key starts with "c")
                out.traces += 1
            else:
                out.answers += 1
            out.usd_not_spent += r.usd
            if r.source_run not in out.sources:
                out.sources.append(r.source_run)
        return out


class RunReport(msgspec.Struct, kw_only=True):
    run_dir: str
    run_id: str
    name: str
    mode: Mode
    cells: list[Cell]
    differences: list[Paired]
    usd_total: float
    usd_unattributed: float  # attempts of jobs that never finished and left no snapshot
    jobs_done: int
    # attempts of executions a crash or a stop cut short, of jobs (or synthesis stages) that another
    # execution then completed: paid for, counted in their cells' spend, and shown apart; a call
    # that a completing execution then reused (docs/reuse.md) was not lost and is not in it
    usd_interrupted: float = 0.0
    # the same for executions that failed (a call's retries spent, or a fatal error)
    usd_failed: float = 0.0
    reuse: ReuseSummary = msgspec.field(default_factory=ReuseSummary)


class Report(msgspec.Struct, kw_only=True):
    runs: list[RunReport]
    compare: bool = False
    notes: list[str] = msgspec.field(default_factory=list)  # e.g. why the plot was skipped
    # with compare: every later run against the first, paired by problem
    comparisons: list[RunComparison] = msgspec.field(default_factory=list)


# --- reading a ledger -------------------------------------------------------------------------


class _Run:
    """The records of one run folder, sorted into what the report needs."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.header: RunHeader | None = None
        self.attempts: list[Attempt] = []
        self.snapshots: list[Snapshot] = []
        self.done: dict[str, JobDone] = {}
        self.synthesis: dict[str, Synthesis] = {}
        self.reused: list[Reuse] = []
        self.failed: set[str] = set()  # executions noted as failed
        for record in records:
            if isinstance(record, Attempt):
                self.attempts.append(record)
            elif isinstance(record, Reuse):
                self.reused.append(record)
            elif isinstance(record, Snapshot):
                self.snapshots.append(record)
            elif isinstance(record, JobDone):
                self.done[record.job_id] = record
            elif isinstance(record, Synthesis):
                self.synthesis[record.key] = record
            elif isinstance(record, Note) and record.kind in FAILURE_NOTES and record.instance:
                self.failed.add(record.instance)
            elif isinstance(record, RunHeader) and self.header is None:
                self.header = record

    def counted_snapshots(self) -> list[Snapshot]:
        return [s for s in self.snapshots if s.job_id in self.done and self.done[s.job_id].instance == s.instance]

    def superseded_usd(self) -> tuple[float, float]:
        """Dollars of attempts whose execution is not the one that completed their job or stage:
        (of executions cut short by a crash or a stop, of executions that failed)."""
        finished = {job_id: done.instance for job_id, done in self.done.items()}
        stages = {f"synthesis:{key}": s.instance for key, s in self.synthesis.items() if s.instance}
        serving = self._serving_attempts(finished, stages)
        interrupted = failed = 0.0
        for a in self.attempts:
            stage = ":".join(a.job_id.split(":", 2)[:2]) if a.job_id.startswith("synthesis:") else a.job_id
            completed = stages.get(stage) if a.kind == "synthesis" else finished.get(a.job_id)
            if a.instance is None or completed is None or a.instance == completed:
                continue
            if (a.call_id, a.attempt) in serving:  # a later execution used this call: not lost
                continue
            if a.instance in self.failed:
                failed += a.usd
            else:
                interrupted += a.usd
        return interrupted, failed

    def _serving_attempts(self, finished: Mapping[str, str | None], stages: Mapping[str, str]) -> set[tuple[str, int]]:
        """(call id, attempt) of this run's paid calls that an execution completing its job or stage
        took instead of paying again (a resume reuses what its killed processes finished): each
        call's last attempt, following reused calls to the paid one."""
        last: dict[str, int] = {}
        for a in self.attempts:
            last[a.call_id] = max(a.attempt, last.get(a.call_id, 0))
        served = {r.call_id: r.source_call_id for r in self.reused if r.mode == "served"}
        used: set[tuple[str, int]] = set()
        for r in self.reused:
            stage = ":".join(r.job_id.split(":", 2)[:2]) if r.job_id.startswith("synthesis:") else r.job_id
            completed = stages.get(stage) if r.job_id.startswith("synthesis:") else finished.get(r.job_id)
            if r.mode != "served" or completed is None or r.instance != completed:
                continue
            source, hops = r.source_call_id, 0
            while source not in last and source in served and hops < len(served):
                source, hops = served[source], hops + 1
            if source in last:
                used.add((source, last[source]))
        return used

    def key_of_job(self) -> dict[str, Key]:
        keys = {s.job_id: (s.model, s.dataset, s.method) for s in self.snapshots}
        keys.update({j.job_id: (j.model, j.dataset, j.method) for j in self.done.values()})
        return keys

    def score_tables(self) -> tuple[dict[Key, _Table], dict[Key, _Table]]:
        """The counted snapshots' scores per key, and their exact-match scores where recorded."""
        scores: dict[Key, _Table] = defaultdict(lambda: defaultdict(dict))
        exact: dict[Key, _Table] = defaultdict(lambda: defaultdict(dict))
        for snap in self.counted_snapshots():
            key = (snap.model, snap.dataset, snap.method)
            scores[key][snap.problem_id].setdefault(snap.sample, {})[snap.budget] = snap.score
            if snap.exact is not None:
                exact[key][snap.problem_id].setdefault(snap.sample, {})[snap.budget] = snap.exact
        return scores, exact

    def attempts_by_key(self) -> tuple[defaultdict[Key, list[Attempt]], defaultdict[Key, list[Attempt]], float]:
        """Evaluation and synthesis attempts per key, and the dollars of those no key claims.

        An attempt belongs to no key when its job never finished and left no snapshot, or its
        synthesis stage left no record.
        """
        job_keys = self.key_of_job()
        synth_keys = {k: (s.model, s.dataset, s.method) for k, s in self.synthesis.items()}
        attempts_by_key: defaultdict[Key, list[Attempt]] = defaultdict(list)
        synthesis_by_key: defaultdict[Key, list[Attempt]] = defaultdict(list)
        unattributed = 0.0
        for attempt in self.attempts:
            if attempt.kind == "synthesis":
                synth = synth_keys.get(attempt.job_id.split(":")[1] if ":" in attempt.job_id else "")
                if synth is not None:
                    synthesis_by_key[synth].append(attempt)
                    continue
            elif attempt.job_id in job_keys:
                attempts_by_key[job_keys[attempt.job_id]].append(attempt)
                continue
            unattributed += attempt.usd
        return attempts_by_key, synthesis_by_key, unattributed


def _read_records(run_dir: Path) -> Iterable[Record]:
    try:
        from runner.ledger.reader import iter_records
    except ImportError:  # the ledger module is optional for reading: decode the lines directly
        return _decode_lines(run_dir)
    return iter_records(run_dir)


def _decode_lines(run_dir: Path) -> Iterable[Record]:
    path = run_dir / "ledger.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise LedgerError(f"{path}: no ledger here")
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip() and line.endswith(b"\n"):
                try:
                    yield decode_line(line)
                except msgspec.DecodeError as exc:
                    raise LedgerError(f"{path}:{number}: not a ledger record: {exc}") from None


# --- building the report ----------------------------------------------------------------------


def build_report(run_dirs: Sequence[str | Path], compare: bool = False, intersect: bool = False) -> Report:
    """Read each run folder's ledger and compute every cell of the report; with ``compare``, every
    later run against the first, paired by problem (``intersect``: on the problems both have).

    Raises:
        LedgerError: a folder has no ledger or a line is not a ledger record.
        ProblemSetsDiffer: compared runs evaluated different problems and ``intersect`` is off.
    """
    comparisons = [compare_runs(run_dirs[0], other, intersect) for other in run_dirs[1:]] if compare else []
    return Report(runs=[_build_run(Path(d)) for d in run_dirs], compare=compare, comparisons=comparisons)


def run_scores(run_dir: str | Path) -> RunScores:
    """The scores a run's report is computed from (its comparison with another run pairs these).

    Raises:
        LedgerError: the folder has no ledger or a line is not a ledger record.
    """
    run_dir = Path(run_dir)
    run = _Run(_read_records(run_dir))
    _manifest, name, mode, seed = _settings(run, run_dir)
    return RunScores(run_dir=str(run_dir), name=name, mode=mode, seed=seed, tables=dict(run.score_tables()[0]))


def compare_runs(run_a: str | Path, run_b: str | Path, intersect: bool = False) -> RunComparison:
    """Run B against run A, every cell both have, paired by problem (see `runner.analysis.compare`).

    Raises:
        ProblemSetsDiffer: a dataset's problems differ between the runs and ``intersect`` is off.
        LedgerError: a folder has no ledger or a line is not a ledger record.
    """
    return compare_scores(run_scores(run_a), run_scores(run_b), intersect)


def _settings(run: _Run, run_dir: Path) -> tuple[dict[str, object], str, Mode, int]:
    """The run's manifest, name, Anytime Index mode and seed, from its header."""
    manifest = run.header.manifest if run.header else {}
    run_table = manifest.get("run", {}) if isinstance(manifest, dict) else {}
    if not isinstance(run_table, dict):
        return manifest, run_dir.name, "mean_then_max", 0
    mode: Mode = run_table.get("anytime_mode", "mean_then_max")
    return manifest, str(run_table.get("name", run_dir.name)), mode, int(run_table.get("seed", 0))


def _build_run(run_dir: Path) -> RunReport:
    run = _Run(_read_records(run_dir))
    manifest, name, mode, seed = _settings(run, run_dir)

    scores, exact = run.score_tables()
    usd_interrupted, usd_failed = run.superseded_usd()
    attempts_by_key, synthesis_by_key, unattributed = run.attempts_by_key()
    cells: list[Cell] = []
    for key in sorted(scores):
        budgets = sorted({b for samples in scores[key].values() for c in samples.values() for b in c if b is not None})
        if not budgets:
            continue
        jobs = [j for j in run.done.values() if (j.model, j.dataset, j.method) == key]
        cells.append(
            _cell(
                key,
                scores[key],
                exact.get(key),
                budgets,
                mode,
                seed,
                attempts_by_key[key],
                synthesis_by_key[key],
                jobs,
                run.header.prices if run.header else {},
            )
        )
    return RunReport(
        run_dir=str(run_dir),
        run_id=run.header.run_id if run.header else run_dir.name,
        name=name,
        mode=mode,
        cells=cells,
        differences=_differences(scores, cells, manifest, mode, seed),
        usd_total=sum(a.usd for a in run.attempts),
        usd_unattributed=unattributed,
        usd_interrupted=usd_interrupted,
        usd_failed=usd_failed,
        jobs_done=len(run.done),
        reuse=ReuseSummary.of(run.reused),
    )


def _cell(
    key: Key,
    table: ScoreTable,
    exact_table: ScoreTable | None,
    budgets: list[int],
    mode: Mode,
    seed: int,
    attempts: list[Attempt],
    synthesis: list[Attempt],
    jobs: list[JobDone],
    prices: Mapping[str, Mapping[str, object]],
) -> Cell:
    summary = summarize(table, budgets, mode, seed)
    exact_summary = summarize(exact_table, budgets, mode, seed) if exact_table else None
    usd_eval = sum(a.usd for a in attempts)
    usd_synth = sum(a.usd for a in synthesis)
    everything = attempts + synthesis
    problems = max(summary.problems, 1)
    reported = [a for a in everything if a.input_tokens is not None and a.output_tokens is not None]
    billed = sum((a.input_tokens or 0) + (a.output_tokens or 0) for a in reported)
    counted = sum(a.input_tokens_counted + a.output_tokens_counted for a in reported)
    ai = summary.anytime_index.value
    return Cell(
        model=key[0],
        dataset=key[1],
        method=key[2],
        summary=summary,
        exact_final=exact_summary.final.value if exact_summary else None,
        exact_full=exact_summary.full.value if exact_summary and exact_summary.full else None,
        usd_eval=usd_eval,
        usd_synthesis=usd_synth,
        usd_total=usd_eval + usd_synth,
        usd_per_problem=(usd_eval + usd_synth) / problems,
        synthesis_per_problem=usd_synth / problems,
        usd_per_ai_point=(usd_eval + usd_synth) / ai if ai > 0 else None,
        input_tokens=sum(a.billed_input for a in everything),
        output_tokens=sum(a.billed_output for a in everything),
        calls=len({a.call_id for a in everything}),
        attempts=len(everything),
        retries=sum(1 for a in everything if a.attempt > 1),
        fidelity=", ".join(sorted({j.fidelity for j in jobs})) or "?",
        counted_to_billed=counted / billed if billed else None,
        approximate_tokens=any(j.approximate_tokens for j in jobs),
        bands=curve_bands(table, budgets, seed),
        usd_at_budget=usd_at_budgets(_completed(attempts, jobs), budgets, prices),
    )


def _completed(attempts: list[Attempt], jobs: list[JobDone]) -> list[Attempt]:
    """The attempts of the executions that completed their jobs (what one trace at a budget costs)."""
    done = {j.job_id: j.instance for j in jobs}
    return [a for a in attempts if a.job_id in done and a.instance in (done[a.job_id], None)]


def _differences(
    scores: Mapping[Key, ScoreTable], cells: list[Cell], manifest: object, mode: Mode, seed: int
) -> list[Paired]:
    """Each non-baseline method minus the baseline (cot) on the same model, dataset and problems."""
    methods = manifest.get("methods", {}) if isinstance(manifest, dict) else {}
    kind_of = {name: (m.get("kind", name) if isinstance(m, dict) else name) for name, m in methods.items()}
    baselines = [c for c in cells if kind_of.get(c.method, c.method) in BASELINE_METHOD_KINDS]
    out: list[Paired] = []
    for cell in cells:
        if cell in baselines:
            continue
        for base in baselines:
            same = (base.model, base.dataset, base.summary.budgets)
            if same != (cell.model, cell.dataset, cell.summary.budgets):
                continue
            diff = paired_difference(
                scores[(cell.model, cell.dataset, cell.method)],
                scores[(base.model, base.dataset, base.method)],
                cell.summary.budgets,
                mode,
                seed,
                labels=(cell.method, base.method),
            )
            if diff is not None:
                out.append(
                    Paired(
                        model=cell.model,
                        dataset=cell.dataset,
                        method=cell.method,
                        baseline=base.method,
                        difference=diff,
                    )
                )
    return out
