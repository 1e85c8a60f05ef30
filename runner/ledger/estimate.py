"""`anytime estimate MANIFEST`: calls, tokens, dollars and minimum wall time, before any call.

Nothing here touches the network. Every prompt is rendered as the run renders it (same jobs, same
seeds, same method prompts) and counted with the model's tiktoken encoding. Only two parts of an
input cannot be known in advance: the partial trace inside a forced-answer prompt (at most its
budget) and a PDP / LEAP preface that synthesis has not built yet (sized from the pool at the
synthesis budget).

Output tokens and dollars come as a range per (provider, model, dataset, method):

- **high**: every trace runs to its output cap and gets one answer per budget, every answer
  reaches its cap, no prompt-cache hits. The bill cannot exceed it (the spend cap uses the same
  worst case per call).
- **expected**: per-job means (calls, attempts, input, cached input, output; the tokens of retries
  included) from earlier
  ledgers of the same model id, dataset file and method kind, priced at today's prices; else the
  stated defaults `DEFAULT_TRACE_FRACTION` and `DEFAULT_ANSWER_FRACTION`.
- **low**: every trace stops at the first budget and gets one short answer.

Minimum wall time per provider: max(attempts / RPM, tokens / TPM) at the expected use. A call is one
request a job decides to make; its attempts are what is sent for it, retries included (a provider's
requests per minute count attempts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from runner.config.calls import LEAP_PRINCIPLES_CAP, PlannedCall, job_calls, plan_models, synthesis_calls, synthesis_key
from runner.config.manifest import LoadedManifest, Manifest
from runner.config.plan import expand_jobs, get_task, synthesis_budget, synthesis_pool
from runner.ledger.prices import PER, ModelPrice, PriceTable, manifest_prices
from runner.ledger.reader import LedgerState, iter_records
from runner.ledger.records import Attempt, JobDone, RunHeader, Synthesis
from runner.ledger.recovery import state_after_recovery
from runner.tasks.methods import PoolTrace, get_method

DEFAULT_TRACE_FRACTION = 1.0  # without history: a trace reaches its last budget (budgets sit below natural lengths)
DEFAULT_ANSWER_FRACTION = 0.25  # without history: a forced answer uses a quarter of its cap
LOW_ANSWER_TOKENS = 8
HISTORY_RUNS = 20  # most recent run folders read when looking for history


class Span(msgspec.Struct, kw_only=True):
    low: float = 0.0
    expected: float = 0.0
    high: float = 0.0

    def add(self, other: Span, times: float = 1.0) -> None:
        self.low += other.low * times
        self.expected += other.expected * times
        self.high += other.high * times


class EstimateRow(msgspec.Struct, kw_only=True):
    """One (provider, model, dataset, method) group; synthesis calls are included."""

    provider: str
    model: str
    dataset: str
    method: str
    fidelity: str
    jobs: int
    synthesis_calls: int
    calls: Span
    input_tokens: Span
    output_tokens: Span
    usd: Span
    expected_from: str  # "history (N jobs)" or "default"
    attempts_expected: float = 0.0  # calls and their retries, as history shows them (else = calls)


class LaneTime(msgspec.Struct, kw_only=True):
    provider: str
    rpm: int | None
    tpm: int | None
    calls: float
    tokens: float
    min_wall_s: float | None  # None: no limit is known before the run
    attempts: float = 0.0  # the requests the calls take, retries included: what RPM counts


class Estimate(msgspec.Struct, kw_only=True):
    manifest: str
    rows: list[EstimateRow]
    lanes: list[LaneTime]
    usd_low: float
    usd_expected: float
    usd_high: float
    calls_high: int
    min_wall_s: float | None
    notes: list[str]
    jobs_done: int = 0  # finished in the run's own ledger: not in the rows (a rerun skips them)
    usd_spent: float = 0.0  # what the run's own ledger has spent so far


# ---- history: per-job means from earlier ledgers --------------------------------------------


@dataclass
class Tally:
    """Sums over the attempts of one group of work (a job, or one synthesis stage): its calls,
    the attempts they took (retries included) and their tokens."""

    calls: float = 0.0
    input: float = 0.0
    cached: float = 0.0
    output: float = 0.0
    attempts: float = 0.0

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.input += other.input
        self.cached += other.cached
        self.output += other.output
        self.attempts += other.attempts

    def scaled(self, factor: float) -> Tally:
        return Tally(
            self.calls * factor,
            self.input * factor,
            self.cached * factor,
            self.output * factor,
            self.attempts * factor,
        )


@dataclass
class Past:
    """Means per evaluated job and per synthesis stage for one (model id, dataset file, method kind)."""

    jobs: int = 0
    per_job: Tally = field(default_factory=Tally)
    stages: int = 0
    per_stage: Tally = field(default_factory=Tally)


def read_history(run_dirs: list[Path]) -> tuple[dict[tuple[str, str, str], Past], list[str]]:
    """Per (model id, dataset file name, method kind): mean tokens per job from these ledgers."""
    jobs: dict[tuple[str, str, str], list[Tally]] = defaultdict(list)
    stages: dict[tuple[str, str, str], list[Tally]] = defaultdict(list)
    used: list[str] = []
    for run_dir in run_dirs:
        if not (Path(run_dir) / "ledger.jsonl").exists():
            continue
        finished = _tally_run(run_dir, jobs, stages)
        if finished:
            used.append(f"expected from {finished} finished jobs in {run_dir}")
    past: dict[tuple[str, str, str], Past] = defaultdict(Past)
    for key, tallies in jobs.items():
        past[key].jobs, past[key].per_job = len(tallies), _mean(tallies)
    for key, tallies in stages.items():
        past[key].stages, past[key].per_stage = len(tallies), _mean(tallies)
    return dict(past), used


def _tally_run(
    run_dir: Path, jobs: dict[tuple[str, str, str], list[Tally]], stages: dict[tuple[str, str, str], list[Tally]]
) -> int:
    """Append one ledger's finished jobs to ``jobs`` and its built synthesis stages to ``stages``.

    Returns how many jobs finished there. Unfinished work is left out: its tokens say nothing
    about what a whole job uses.
    """
    names: dict[tuple[str, str], str] = {}
    by_job: dict[str, Tally] = defaultdict(Tally)
    done: dict[str, tuple[str, str, str]] = {}
    built: dict[str, tuple[str, str, str]] = {}
    for rec in iter_records(run_dir):
        if isinstance(rec, Attempt):
            tally = by_job[_stage_of(rec.job_id)]
            tally.add(
                Tally(
                    calls=1 if rec.attempt == 1 else 0,  # a retry is another attempt of the same call
                    input=rec.billed_input,
                    cached=rec.cached_input_tokens or 0,
                    output=rec.billed_output,
                    attempts=1,
                )
            )
        elif isinstance(rec, JobDone):
            done[rec.job_id] = (rec.model, rec.dataset, rec.method)
        elif isinstance(rec, Synthesis):
            built[f"synthesis:{rec.key}"] = (rec.model, rec.dataset, rec.method)
        elif isinstance(rec, RunHeader):
            names.update(_names(rec.manifest))
    for sink, finished in ((jobs, done), (stages, built)):
        for job_id, (model, dataset, method) in finished.items():
            key = (
                names.get(("models", model), model),
                names.get(("datasets", dataset), dataset),
                names.get(("methods", method), method),
            )
            sink[key].append(by_job[job_id])
    return len(done)


def _stage_of(job_id: str) -> str:
    # synthesis attempts are named "synthesis:<key>:<problem>:<k>": one stage per key
    return ":".join(job_id.split(":", 2)[:2]) if job_id.startswith("synthesis:") else job_id


def _names(manifest: dict[str, object]) -> dict[tuple[str, str], str]:
    """(table, key) -> what identifies it across runs: model id, dataset file name, method kind."""
    out: dict[tuple[str, str], str] = {}
    for table, attr in (("models", "model"), ("datasets", "path"), ("methods", "kind")):
        entries = manifest.get(table)
        for key, value in entries.items() if isinstance(entries, dict) else ():
            if isinstance(value, dict) and isinstance(value.get(attr), str):
                out[(table, key)] = Path(value[attr]).name if attr == "path" else value[attr]
    return out


def _mean(tallies: list[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.add(t)
    return total.scaled(1 / len(tallies))


# ---- prompts --------------------------------------------------------------------------------


@dataclass
class Group:
    """The planned calls of one (model, dataset, method), counted: sums over its jobs and its pool.

    Every number comes from `runner.config.calls`, the planner the run builds its requests with.
    """

    fidelity: str
    jobs: int = 0
    trace_input: int = 0  # the trace prompts, exact (preface: estimated); hidden: one per-budget prompt
    answer_input: int = 0  # the forced-answer prompts with an empty cut, exact
    trace_cap: int = 0  # a trace call's output cap
    answer_cap: int = 0  # a forced answer's output cap
    synthesis: list[PlannedCall] = field(default_factory=list)
    synthesis_budget: int = 0


def _filler(tokens: int) -> str:
    return " ".join(["word"] * tokens)  # one o200k / cl100k token per " word"


def _preface(loaded: LoadedManifest, method_key: str, dataset: str) -> str | None:
    """A stand-in for the preface synthesis will build: as many tokens as the real one at most."""
    params = loaded.manifest.methods[method_key]
    strategy = get_method(params.kind, params)
    if not strategy.needs_synthesis:
        return None
    if params.kind == "leap":
        return _filler(LEAP_PRINCIPLES_CAP)
    task = get_task(loaded.manifest.datasets[dataset].kind)
    sb = synthesis_budget(loaded, method_key, dataset)
    pool = [task.render(p, 0) for p in synthesis_pool(loaded, dataset)]
    traces = [
        PoolTrace(
            problem_id=r.problem.id,
            rendered_question=r.question,
            trace_text=_filler(sb),
            answer=r.gold,
            score=score,
            gold=r.gold,
        )
        for r in pool
        for score in (1.0, 0.0)
    ]
    return strategy.build_preface(task, traces)[1]


def count_prompts(
    loaded: LoadedManifest, done: Collection[str] = (), built: Collection[str] = ()
) -> dict[tuple[str, str, str], Group]:
    """Count the planned calls of every job not in ``done``, grouped by (model, dataset, method).

    Synthesis is left out for groups whose key is in ``built`` (its record is in the ledger).
    """
    models = plan_models(loaded)
    groups: dict[tuple[str, str, str], Group] = {}
    prefaces: dict[tuple[str, str, str], str | None] = {}
    for job in expand_jobs(loaded):
        key = (job.model, job.dataset, job.method)
        plan = models[job.model]
        if key not in groups:
            groups[key] = Group(fidelity=plan.fidelity)
            prefaces[key] = _preface(loaded, job.method, job.dataset)
            if prefaces[key] is not None and synthesis_key(loaded, *key) not in built:
                groups[key].synthesis = synthesis_calls(loaded, plan, job.dataset, job.method)
                groups[key].synthesis_budget = synthesis_budget(loaded, job.method, job.dataset)
        if job.job_id in done:
            continue
        _count_job(groups[key], job_calls(loaded, plan, job, prefaces[key]))
    return groups


def _count_job(group: Group, planned: list[PlannedCall]) -> None:
    group.jobs += 1
    first = planned[0]
    group.trace_input += first.prompt_tokens
    group.trace_cap = first.request.max_output_tokens
    answers = [c for c in planned if c.kind == "answer" and c is not first]
    if answers:
        group.answer_input += answers[0].prompt_tokens
        group.answer_cap = answers[0].request.max_output_tokens


# ---- the estimate ---------------------------------------------------------------------------


@dataclass
class Use:
    """Calls and tokens of some work as a range, split the way prices split them."""

    calls: Span = field(default_factory=Span)
    input: Span = field(default_factory=Span)
    cached: Span = field(default_factory=Span)
    output: Span = field(default_factory=Span)
    # attempts beyond the calls (retries) as history shows them; without history none are assumed
    retries_expected: float = 0.0

    def add(self, other: Use, times: float = 1.0) -> None:
        for part in ("calls", "input", "cached", "output"):
            getattr(self, part).add(getattr(other, part), times)
        self.retries_expected += other.retries_expected * times

    def expect(self, tally: Tally, times: float) -> None:
        """Replace the expected values with history, never above the high bound."""
        self.calls.expected = min(tally.calls * times, self.calls.high)
        self.retries_expected = max(tally.attempts - tally.calls, 0.0) * times
        self.input.expected = min(tally.input * times, self.input.high)
        self.cached.expected = min(tally.cached * times, self.input.expected)
        self.output.expected = min(tally.output * times, self.output.high)

    def usd(self, price: ModelPrice) -> Span:
        cached_price = price.cached_input if price.cached_input is not None else price.input

        def one(inp: float, cached: float, out: float) -> float:
            return ((inp - cached) * price.input + cached * cached_price + out * price.output) / PER

        i, c, o = self.input, self.cached, self.output
        # high never assumes a cache hit, and pays a cache write where that is dearer than input
        prompt_high = max(price.input, price.cache_write_input or 0.0)
        return Span(
            low=one(i.low, c.low, o.low),
            expected=one(i.expected, c.expected, o.expected),
            high=(i.high * prompt_high + o.high * price.output) / PER,
        )


def _jobs_use(g: Group, budgets: tuple[int, ...]) -> Use:
    """Every evaluated job of a group (without history)."""
    n, k, first, last = g.jobs, len(budgets), budgets[0], budgets[-1]
    answer_cap = g.answer_cap
    length = DEFAULT_TRACE_FRACTION * last
    if g.fidelity == "hidden":  # one call per budget with its cap set to the budget
        return Use(
            calls=Span(low=n * k, expected=n * k, high=n * k),
            input=Span(low=k * g.trace_input, expected=k * g.trace_input, high=k * g.trace_input),
            output=Span(
                low=n * sum(min(b, first) for b in budgets),
                expected=n * sum(min(b, length) for b in budgets),
                high=n * sum(budgets),
            ),
        )
    # a trace of `length` tokens gives distinct cuts below it, and one more at its end
    below = [b for b in budgets if b < length]
    distinct = len(below) + (1 if len(below) < k else 0)
    cut_tokens = sum(below) + (length if len(below) < k else 0)
    return Use(
        calls=Span(low=2 * n, expected=n * (1 + distinct), high=n * (1 + k)),
        input=Span(
            low=g.trace_input + g.answer_input + n * first,
            expected=g.trace_input + distinct * g.answer_input + n * cut_tokens,
            high=g.trace_input + k * g.answer_input + n * sum(budgets),
        ),
        output=Span(
            low=n * (first + LOW_ANSWER_TOKENS),
            expected=n * (length + distinct * DEFAULT_ANSWER_FRACTION * answer_cap),
            high=n * (g.trace_cap + k * answer_cap),
        ),
    )


def _synthesis_use(g: Group) -> Use:
    """PDP / LEAP: the group's planned synthesis calls (pool x k traces and their answers, LEAP's
    principles call), once per group."""
    if not g.synthesis:
        return Use()
    sb = g.synthesis_budget
    principles = [c for c in g.synthesis if c.job_id.endswith(":principles")]
    samples = [c for c in g.synthesis if not c.job_id.endswith(":principles")]
    # an answer call carries a cut of up to the synthesis budget (hidden reasoning has none)
    answers = [c for c in samples if c.budget is not None] if g.fidelity != "hidden" else []
    traces = len(samples) - len(answers)
    low_in = float(sum(c.prompt_tokens for c in g.synthesis))
    # the principles prompt quotes the pool's mistakes: at most every trace, cut at the budget
    high_in = low_in + len(answers) * sb + len(principles) * traces * sb
    high_out = float(sum(c.request.max_output_tokens for c in g.synthesis))
    calls = float(len(g.synthesis))
    return Use(
        calls=Span(low=calls, expected=calls, high=calls),
        input=Span(low=low_in, expected=(low_in + high_in) / 2, high=high_in),
        output=Span(
            low=traces * min(sb, LOW_ANSWER_TOKENS * 8), expected=high_out * DEFAULT_TRACE_FRACTION, high=high_out
        ),
    )


def estimate_manifest(
    loaded: LoadedManifest, *, previous: list[Path] | None = None, remaining: bool = True
) -> Estimate:
    """Price a manifest without any network call.

    Args:
        loaded: the validated manifest.
        previous: run folders whose ledgers calibrate "expected"; None reads the run folders
            under the manifest's ledger folder, [] uses the stated defaults only.
        remaining: leave out what the run's own ledger already holds (finished jobs, built
            synthesis), as a rerun skips it; False prices the whole sweep.

    Raises:
        PriceError: a selected model has no price (names the manifest and ``models.<key>.price``).
    """
    m = loaded.manifest
    prices = manifest_prices(loaded, PriceTable.load())  # unknown prices fail before any counting
    history, sources = read_history(_previous_dirs(loaded) if previous is None else previous)
    state = _own_state(loaded) if remaining else None
    done = state.completed_jobs if state else set()
    rows = _rows(loaded, prices, history, done, state.synthesis if state else ())
    lanes = _lanes(m, rows)
    walls = [lane.min_wall_s for lane in lanes if lane.min_wall_s is not None]
    return Estimate(
        manifest=str(loaded.path),
        rows=rows,
        lanes=lanes,
        usd_low=sum(r.usd.low for r in rows),
        usd_expected=sum(r.usd.expected for r in rows),
        usd_high=sum(r.usd.high for r in rows),
        calls_high=int(sum(r.calls.high for r in rows)),
        min_wall_s=max(walls) if walls else None,
        notes=_notes(rows, sources, state),
        jobs_done=len(done),
        usd_spent=state.total_usd if state else 0.0,
    )


def _rows(
    loaded: LoadedManifest,
    prices: dict[str, ModelPrice],
    history: dict[tuple[str, str, str], Past],
    done: Collection[str],
    built: Collection[str],
) -> list[EstimateRow]:
    """One row per (model, dataset, method) group that still has calls to make."""
    rows = []
    for (model_key, dataset, method), group in count_prompts(loaded, done, built).items():
        row = _row(loaded, model_key, dataset, method, group, prices[model_key], history)
        if row.calls.high:
            rows.append(row)
    return rows


def _notes(rows: list[EstimateRow], sources: list[str], state: LedgerState | None) -> list[str]:
    """What the figures assume, where "expected" came from, and what a rerun leaves out."""
    notes = [
        "input: prompts counted exactly with each model's encoding, plus each forced answer's partial trace "
        "(at most its budget)",
        "high: every trace reaches its output cap, one answer per budget, every answer its cap, no cache hits",
        *sources,
    ]
    if any(r.expected_from == "default" for r in rows):
        notes.append(
            f"expected without history: traces end at {DEFAULT_TRACE_FRACTION:.0%} of the last budget, "
            f"answers use {DEFAULT_ANSWER_FRACTION:.0%} of their cap (pass --from RUN to calibrate)"
        )
    if state is not None and state.completed_jobs:
        notes.append(
            f"{len(state.completed_jobs)} jobs already finished in the run's ledger "
            f"(${state.total_usd:.4f} spent) are left out: a rerun skips them"
        )
    if any(r.synthesis_calls for r in rows):
        notes.append(
            "PDP/LEAP synthesis calls are included once per (model, dataset, method); the preface "
            "inside trace prompts is sized from the pool, as synthesis has not run yet"
        )
    return notes


def _own_state(loaded: LoadedManifest) -> LedgerState | None:
    return state_after_recovery(loaded.run_dir())


def _previous_dirs(loaded: LoadedManifest) -> list[Path]:
    root = loaded.resolve(loaded.manifest.run.ledger_dir)
    if not root.is_dir():
        return []
    found = sorted(root.glob("*/ledger.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.parent for p in found[:HISTORY_RUNS]]


def _row(
    loaded: LoadedManifest,
    model_key: str,
    dataset: str,
    method: str,
    group: Group,
    price: ModelPrice,
    history: dict[tuple[str, str, str], Past],
) -> EstimateRow:
    m = loaded.manifest
    model, kind = m.models[model_key], m.methods[method].kind
    jobs = _jobs_use(group, loaded.budgets_for(dataset))
    synth = _synthesis_use(group)
    past = history.get((model.model, Path(m.datasets[dataset].path).name, kind))
    if past is not None and past.jobs:
        jobs.expect(past.per_job, group.jobs)
    if past is not None and past.stages and synth.calls.high:
        synth.expect(past.per_stage, 1)
    total = Use()
    total.add(jobs)
    total.add(synth)
    return EstimateRow(
        provider=model.provider,
        model=model_key,
        dataset=dataset,
        method=method,
        fidelity=group.fidelity,
        jobs=group.jobs,
        synthesis_calls=int(synth.calls.high),
        calls=total.calls,
        input_tokens=total.input,
        output_tokens=total.output,
        usd=total.usd(price),
        expected_from=f"history ({past.jobs} jobs)" if past is not None and past.jobs else "default",
        attempts_expected=total.calls.expected + total.retries_expected,
    )


def _lanes(m: Manifest, rows: list[EstimateRow]) -> list[LaneTime]:
    """Minimum wall time per provider: max(attempts / RPM, tokens / TPM) at the expected use."""
    lanes = []
    for name, provider in m.providers.items():
        mine = [r for r in rows if r.provider == name]
        if not mine:
            continue
        rpm, tpm = provider.rpm, provider.tpm
        if provider.kind == "sim":  # the simulator enforces its own limits too
            rpm = min((x for x in (rpm, m.simulator.rpm) if x is not None), default=None)
            tpm = min((x for x in (tpm, m.simulator.tpm) if x is not None), default=None)
        calls = sum(r.calls.expected for r in mine)
        attempts = sum(max(r.attempts_expected, r.calls.expected) for r in mine)
        tokens = sum(r.input_tokens.expected + r.output_tokens.expected for r in mine)
        bounds = [60.0 * attempts / rpm] if rpm else []
        bounds += [60.0 * tokens / tpm] if tpm else []
        lanes.append(
            LaneTime(
                provider=name,
                rpm=rpm,
                tpm=tpm,
                calls=calls,
                tokens=tokens,
                min_wall_s=max(bounds) if bounds else None,
                attempts=attempts,
            )
        )
    return lanes


def confirm_needed(estimate: Estimate, manifest: Manifest) -> bool:
    """Whether `anytime run` must ask first: the high bound is above ``run.confirm_above_usd``."""
    return estimate.usd_high > manifest.run.confirm_above_usd
