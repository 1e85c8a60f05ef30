"""`anytime estimate MANIFEST`: calls, tokens, dollars and the least wall time, before any call.

Nothing here touches the network. Every prompt is rendered as the run renders it (same jobs, same
seeds, same method prompts) and counted with the model's tiktoken encoding (`runner.config.calls`
plans every request; `JobShape` holds a job's counts). Only how each trace behaves is unknown:
how long it runs, what it bills, how long its answers are. That comes as samples
(`runner.ledger.samples`): the run's own finished jobs (a pilot, or a resumed run), else earlier
runs of the same model id, dataset file and method kind, else a stated prior. Each remaining job
is priced over the samples by `runner.ledger.job_cost`, which knows the answer schedule and the
provider's documented prompt caching, so the expected bill includes the cache reads the run will
get.

Traces already paid for (the run's own transcripts, ``run.reuse`` / ``--reuse``) are not priced
again: a job a stored trace serves costs only the forced answers its new cuts need
(`runner.ledger.reuse_estimate`; docs/reuse.md).

Per (provider, model, dataset, method):

- **high**: every trace runs to its output cap and gets one answer per budget, every answer
  reaches its cap, no prompt-cache hit, every prompt token at the dearer of the input and
  cache-write prices. The bill cannot exceed it (the spend cap uses the same worst case per call).
- **expected**: the mean over the samples; with observed samples also a 90% interval for what
  is left (the spread of one job's cost over the samples, and the uncertainty of their mean).
- **low**: every trace stops at the first budget and gets one short answer.

Least wall time per provider: the stated limits are leaky buckets that start full, so no run can
be faster than (calls - RPM) / RPM or (tokens - TPM) / TPM minutes at its low use. A call is one
request a job decides to make; its attempts are what is sent for it, retries included (a
provider's requests per minute count attempts; observed samples carry their retries).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from runner.config.calls import PlannedCall, job_calls, plan_models, synthesis_calls, synthesis_key
from runner.config.kinds import prompt_caching, served_by_simulator
from runner.config.manifest import LoadedManifest, Manifest
from runner.config.plan import Job, expand_jobs, get_task, synthesis_budget, synthesis_pool
from runner.errors import LedgerError
from runner.ledger.job_cost import (
    SEAM,
    JobShape,
    Setting,
    TraceSample,
    Use,
    high_usd,
    high_use,
    job_use,
)
from runner.ledger.prices import ModelPrice, PriceTable, batch_rates, manifest_prices
from runner.ledger.reader import LedgerState
from runner.ledger.recovery import state_after_recovery
from runner.ledger.reuse_estimate import Candidate, ReuseLookup, ServedJob
from runner.ledger.samples import ANSWER_FRACTION, LedgerSamples, prior_samples
from runner.ledger.trace_store import TraceStore
from runner.tasks.methods import PoolTrace, get_method

LOW_ANSWER_TOKENS = 8
LOW_POOL_TOKENS = 64  # the low case's pool traces (synthesis): they stop almost at once
HISTORY_RUNS = 20  # most recent run folders read when looking for history
Z90 = 1.645  # two-sided 90% interval of a normal


class Span(msgspec.Struct, kw_only=True):
    low: float = 0.0
    expected: float = 0.0
    high: float = 0.0

    def add(self, other: Span, times: float = 1.0) -> None:
        self.low += other.low * times
        self.expected += other.expected * times
        self.high += other.high * times


class EstimateRow(msgspec.Struct, kw_only=True):
    """One (provider, model, dataset, method) group; its synthesis calls are included.

    ``usd_interval`` (observed samples only): 90% interval of the expected dollars.
    ``usd_uncached``: the expected tokens priced without any prompt-cache read or write.
    """

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
    expected_from: str  # "this run (N jobs)", "history (N jobs)" or "prior"
    attempts_expected: float = 0.0  # calls and their retries, as observed samples show them (else = calls)
    cached_tokens: float = 0.0
    usd_uncached: float = 0.0
    usd_interval: tuple[float, float] | None = None
    reused_traces: int = 0  # jobs a stored trace serves: only their new answers are priced
    reused_answers: int = 0  # their forced answers a stored answer serves
    usd_not_spent: float = 0.0  # what those stored calls cost where they were paid
    # both modes side by side: the same calls streamed, and sent through the provider's batch
    # interface at its batch rates (None: the provider has no batch interface); ``usd`` is the
    # run's own mode (``run.mode``)
    usd_stream: Span | None = None
    usd_batch: Span | None = None


class LaneTime(msgspec.Struct, kw_only=True):
    """One provider's expected use, and the least time its stated limits allow (at the low use)."""

    provider: str
    rpm: int | None
    tpm: int | None
    calls: float  # expected
    tokens: float  # expected
    min_wall_s: float | None  # at the low use, a true lower bound; None: no limit is known before the run
    attempts: float = 0.0  # the requests the calls are expected to take, retries included: what RPM counts


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
    usd_interval: tuple[float, float] | None = None  # 90%, when every row has observed samples
    usd_uncached: float = 0.0  # the expected tokens without prompt caching
    reused_traces: int = 0  # jobs served by a stored trace (see `EstimateRow`)
    usd_not_spent: float = 0.0
    mode: str = "stream"  # the run's mode: the usd_* figures above are its own
    usd_stream: Span | None = None  # the whole estimate streamed
    usd_batch: Span | None = None  # through the batch interfaces (None: a provider has none)
    batch_waves: int = 0  # batches that follow one another (traces, answers; synthesis first)


# ---- the planned calls, counted ----------------------------------------------------------------


@dataclass
class Group:
    """The planned calls of one (model, dataset, method), counted per job and per pool sample.

    Every number comes from `runner.config.calls`, the planner the run builds its requests with.
    """

    fidelity: str
    jobs: int = 0
    shapes: Counter[JobShape] = field(default_factory=Counter)  # remaining jobs, by shape
    trace_input: int = 0  # the trace prompts, exact (preface: estimated); hidden: one per-budget prompt
    answer_input: int = 0  # the forced-answer prompts with an empty cut, exact
    trace_cap: int = 0  # a trace call's output cap
    answer_cap: int = 0  # a forced answer's output cap
    synthesis: list[PlannedCall] = field(default_factory=list)
    synthesis_budget: int = 0
    # jobs a stored trace serves: (a forced answer's prompt with an empty cut, the cut's tokens) of
    # each answer they still pay for, how many answers are served, and what the stored calls cost
    served_jobs: int = 0
    new_answers: list[tuple[int, int]] = field(default_factory=list)
    # jobs whose stored trace falls short of the last budget: (the shape priced as expected, with
    # only the answers past the stored trace's reach; the whole job's shape, for the high bound)
    short_shapes: Counter[tuple[JobShape, JobShape]] = field(default_factory=Counter)
    answers_reused: int = 0
    usd_not_spent: float = 0.0


def shape_of(planned: list[PlannedCall], budgets: tuple[int, ...]) -> JobShape:
    """A job's (or a pool sample's) planned calls as the counts its cost depends on."""
    first = planned[0]
    if len(planned) < 2 or first.kind == planned[1].kind or first.budget is not None:  # hidden reasoning
        return JobShape(budgets=budgets, trace_prompt=first.prompt_tokens, trace_cap=first.request.max_output_tokens)
    answer = planned[1]
    lead, head = answer.prefix_tokens or (0, 0)
    return JobShape(
        budgets=budgets,
        trace_prompt=first.prompt_tokens,
        trace_cap=first.request.max_output_tokens,
        group_prefix=first.prefix_tokens[0] if first.prefix_tokens else 0,
        answer_prompt=answer.prompt_tokens,
        answer_head=head,
        answer_lead=lead,
        answer_cap=answer.request.max_output_tokens,
    )


def _filler(tokens: int) -> str:
    return " ".join(["word"] * tokens)  # one o200k / cl100k token per " word"


def _preface(loaded: LoadedManifest, method_key: str, dataset: str) -> str | None:
    """A stand-in for the preface synthesis will build: as many tokens as the real one at most."""
    params = loaded.manifest.methods[method_key]
    strategy = get_method(params.kind, params)
    if not strategy.needs_synthesis:
        return None
    if params.kind == "leap":
        return _filler(1024)
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
    loaded: LoadedManifest,
    done: Collection[str] = (),
    built: Collection[str] = (),
    prefaces: dict[str, str] | None = None,
    only: Collection[str] | None = None,
    reuse: ReuseLookup | None = None,
) -> dict[tuple[str, str, str], Group]:
    """Count the planned calls of every job not in ``done``, grouped by (model, dataset, method).

    Synthesis is left out for groups whose key is in ``built`` (its record is in the ledger, or in
    a run reused from); ``prefaces`` (by synthesis key) are the prefaces already built, used as
    they are; ``only`` (job ids) restricts the count to those jobs (a pilot); a job ``reuse``
    finds served by a stored trace counts only the answers it still needs.
    """
    models = plan_models(loaded)
    groups: dict[tuple[str, str, str], Group] = {}
    stand_ins: dict[tuple[str, str, str], str | None] = {}
    served: list[tuple[Job, list[PlannedCall], Candidate]] = []
    for job in expand_jobs(loaded):
        key = (job.model, job.dataset, job.method)
        plan = models[job.model]
        if key not in groups:
            groups[key] = group = Group(fidelity=plan.fidelity)
            skey = synthesis_key(loaded, *key)
            stand_ins[key] = (prefaces or {}).get(skey) or _preface(loaded, job.method, job.dataset)
            if stand_ins[key] is not None and skey not in built:
                group.synthesis = synthesis_calls(loaded, plan, job.dataset, job.method)
                group.synthesis_budget = synthesis_budget(loaded, job.method, job.dataset)
        if job.job_id in done or (only is not None and job.job_id not in only):
            continue
        planned = job_calls(loaded, plan, job, stand_ins[key])
        found = reuse.candidate(plan, planned[0], job.budgets) if reuse is not None else None
        if found is not None:
            served.append((job, planned, found))
        else:
            paid = reuse.short_of(plan, planned[0], job.budgets) if reuse is not None else job.budgets
            _count_job(groups[key], planned, job.budgets, paid)
    if reuse is not None:  # in the stored files' order: each member is decoded once
        served.sort(key=lambda item: (str(item[2].stored.run_dir), item[2].stored.member))
        for job, planned, found in served:
            task = get_task(loaded.manifest.datasets[job.dataset].kind)
            _count_served(
                groups[(job.model, job.dataset, job.method)], planned, reuse.serve(models[job.model], job, task, found)
            )
    return groups


def _count_job(
    group: Group, planned: list[PlannedCall], budgets: tuple[int, ...], paid: tuple[int, ...] | None = None
) -> None:
    """A job's planned calls; ``paid``: the budgets whose answers it is expected to pay for (a
    stored trace that falls short serves the others), its high bound still counting all of them."""
    group.jobs += 1
    first = planned[0]
    group.trace_input += first.prompt_tokens
    group.trace_cap = first.request.max_output_tokens
    answers = [c for c in planned if c.kind == "answer" and c is not first]
    if answers:
        group.answer_input += answers[0].prompt_tokens
        group.answer_cap = answers[0].request.max_output_tokens
    if paid is None or paid == budgets:
        group.shapes[shape_of(planned, budgets)] += 1
    else:
        group.short_shapes[(shape_of(planned, paid), shape_of(planned, budgets))] += 1


def _count_served(group: Group, planned: list[PlannedCall], served: ServedJob) -> None:
    """A job a stored trace serves: no trace call, and only the answers of its new cuts."""
    group.jobs += 1
    group.served_jobs += 1
    answer = next(c for c in planned if c.kind == "answer")
    group.answer_cap = answer.request.max_output_tokens
    group.new_answers += [(answer.prompt_tokens, cut) for cut in served.new_cuts]
    group.answers_reused += served.answers_reused
    group.usd_not_spent += served.usd_not_spent


# ---- pricing a group ---------------------------------------------------------------------------


# Student's t, two-sided 90% (the 0.95 quantile), by degrees of freedom
_T90 = {
    1: 6.314,
    2: 2.920,
    3: 2.353,
    4: 2.132,
    5: 2.015,
    6: 1.943,
    7: 1.895,
    8: 1.860,
    9: 1.833,
    10: 1.812,
    12: 1.782,
    15: 1.753,
    20: 1.725,
    30: 1.697,
    60: 1.671,
}


def t90(df: int) -> float:
    """The 0.95 quantile of Student's t with ``df`` degrees of freedom (the next smaller tabled df)."""
    if df < 1:
        return _T90[1]
    return next((_T90[d] for d in sorted(_T90, reverse=True) if d <= df), Z90) if df <= 60 else Z90


@dataclass
class Priced:
    """A group's use and dollars: low, expected (with its variance, if observed) and high."""

    low: Use = field(default_factory=Use)
    expected: Use = field(default_factory=Use)
    high: Use = field(default_factory=Use)
    usd_low: float = 0.0
    usd_expected: float = 0.0
    usd_high: float = 0.0
    variance: float = 0.0  # of the expected dollars (observed samples)
    spread: float = 0.0  # sum of per-job standard deviations (for the mean's uncertainty)
    samples: int = 0  # how many samples the group was priced over

    def half_interval(self) -> float:
        """Half the 90% interval: each job's own spread, and the uncertainty of the samples' mean
        (Student's t: a pilot has few samples)."""
        return math.hypot(
            Z90 * math.sqrt(self.variance), t90(self.samples - 1) * self.spread / math.sqrt(max(self.samples, 1))
        )

    def add(self, other: Priced) -> None:
        for part in ("low", "expected", "high"):
            getattr(self, part).add(getattr(other, part))
        self.usd_low += other.usd_low
        self.usd_expected += other.usd_expected
        self.usd_high += other.usd_high
        self.variance += other.variance
        self.spread += other.spread


def price_shapes(
    shapes: Counter[JobShape],
    samples: list[TraceSample],
    setting: Setting,
    price: ModelPrice,
    low_length: int | None = None,
) -> Priced:
    """Jobs (or pool samples) of one group, each priced over every sample; the low case stops each
    trace at ``low_length`` tokens (default: its first budget)."""
    out = Priced()
    for shape, count in shapes.items():
        uses = [job_use(shape, s, setting) for s in samples]
        dollars = [u.usd(price) for u in uses]
        mean = sum(dollars) / len(dollars)
        for u in uses:
            out.expected.add(u, count / len(uses))
        out.usd_expected += count * mean
        var = sum((d - mean) ** 2 for d in dollars) / max(len(dollars) - 1, 1)
        out.variance += count * var
        out.spread += count * math.sqrt(var)
        short = float(min(shape.budgets[0], low_length or shape.budgets[0]))
        low_sample = TraceSample(short, True, short, LOW_ANSWER_TOKENS)
        low = job_use(shape, low_sample, setting)
        out.low.add(low, count)
        out.usd_low += count * low.usd(price)
        high = high_use(shape, setting)
        out.high.add(high, count)
        out.usd_high += count * high_usd(high, price)
    return out


def _with_stored(group: Group, samples: list[TraceSample], setting: Setting, price: ModelPrice) -> Priced:
    """The jobs a stored trace serves (only their new answers) or falls short for (their trace call
    and the answers past the stored reach as expected; low: a continuation may add next to nothing
    before it ends; high: the whole job)."""
    out = _served_answers(group, samples, price) if group.new_answers else Priced()
    for (expected, whole), count in group.short_shapes.items():
        short = price_shapes(Counter({expected: count}), samples, setting, price, low_length=1)
        full = price_shapes(Counter({whole: count}), samples, setting, price)
        short.high, short.usd_high = full.high, full.usd_high
        out.add(short)
    return out


def _served_answers(group: Group, samples: list[TraceSample], price: ModelPrice) -> Priced:
    """The forced answers the served jobs still pay for: their prompts exactly (an empty cut's prompt
    and the cut's tokens), their output as the samples' answers, no cache read counted."""
    out = Priced()
    answer_output = sum(s.answer_output for s in samples) / len(samples) if samples else 0.0
    for prompt, cut in group.new_answers:
        low = Use(calls=1, input=prompt + cut - SEAM, output=1, attempts=1)  # at least one token out
        expected = Use(calls=1, input=prompt + cut, output=answer_output, attempts=1)
        high = Use(calls=1, input=prompt + cut + SEAM, output=group.answer_cap, attempts=1)
        out.add(Priced(low, expected, high, low.usd(price), expected.usd(price), high_usd(high, price)))
    return out


def _principles(calls: list[PlannedCall], samples: list[TraceSample], sb: int, price: ModelPrice) -> Priced:
    """LEAP's one principles call: its prompt quotes the pool's mistakes (at most six, cut at the budget)."""
    out = Priced()
    for call in calls:
        cut = sum(min(s.traced, sb) for s in samples) / len(samples)
        low = Use(calls=1, input=call.prompt_tokens, output=LOW_ANSWER_TOKENS)
        expected = Use(
            calls=1, input=call.prompt_tokens + 3 * cut, output=ANSWER_FRACTION * 4 * call.request.max_output_tokens
        )
        high = Use(calls=1, input=call.prompt_tokens + 6 * sb, output=call.request.max_output_tokens)
        out.add(Priced(low, expected, high, low.usd(price), expected.usd(price), high_usd(high, price)))
    return out


def _synthesis_shapes(group: Group) -> tuple[Counter[JobShape], list[PlannedCall]]:
    """The pool samples' shapes (a trace and its answer, or a hidden call each) and LEAP's principles call."""
    principles = [c for c in group.synthesis if c.job_id.endswith(":principles")]
    by_sample: dict[str, list[PlannedCall]] = {}
    for call in group.synthesis:
        if call not in principles:
            by_sample.setdefault(call.job_id, []).append(call)
    shapes: Counter[JobShape] = Counter(shape_of(calls, (group.synthesis_budget,)) for calls in by_sample.values())
    return shapes, principles


def _setting(loaded: LoadedManifest, model_key: str, fidelity: str, jobs: int) -> Setting:
    m = loaded.manifest
    model = m.models[model_key]
    provider = m.providers[model.provider]
    aware = m.run.answers == "at_cut"
    if aware:  # the group's first trace warms its shared prefix; the others read it
        hit, write = (max(jobs - 1, 0) / jobs, 1 / jobs) if jobs else (0.0, 0.0)
    else:  # all at once: only the traces started after the first wave was processed read it
        hit, write = (max(jobs - provider.max_concurrency, 0) / jobs if jobs else 0.0), 0.0
    return Setting(
        fidelity=fidelity,
        caching=prompt_caching(provider.kind, model.model),
        cache_aware=aware,
        prompt_stated=provider.kind == "anthropic",
        group_hit=hit,
        group_write=write,
    )


# ---- the estimate ------------------------------------------------------------------------------


def estimate_manifest(
    loaded: LoadedManifest,
    *,
    previous: list[Path] | None = None,
    remaining: bool = True,
    only: Collection[str] | None = None,
) -> Estimate:
    """Price a manifest without any network call.

    Args:
        loaded: the validated manifest.
        previous: run folders whose finished jobs serve as samples; None reads the run folders
            under the manifest's ledger folder, [] uses the prior only (the run's own ledger
            counts still, unless ``remaining`` is False).
        remaining: leave out what the run's own ledger already holds (finished jobs, built
            synthesis), as a rerun skips it, and calibrate on its finished jobs first; False
            prices the whole sweep.
        only: price only these jobs (a pilot's, `runner.config.plan.pilot_jobs`).

    Raises:
        PriceError: a selected model has no price (names ``models.<key>.price``).
    """
    prices = manifest_prices(loaded, PriceTable.load())  # unknown prices fail before any counting
    state = state_after_recovery(loaded.run_dir()) if remaining else None
    own = LedgerSamples()
    if state is not None and state.completed_jobs:
        own.read(loaded.run_dir())
    history, skipped = _history(loaded, previous, own)
    done = state.completed_jobs if state else set()
    store = _reuse_store(loaded, remaining)
    prefaces = {**store.prefaces, **{key: rec.text for key, rec in (state.synthesis if state else {}).items()}}
    lookup = ReuseLookup(store) if store else None
    groups = count_prompts(loaded, done, set(prefaces), prefaces, only, lookup)
    estimate = _assemble(loaded, _rows(loaded, prices, own, history, groups), own, history, state)
    estimate.notes += skipped
    return estimate


def _reuse_store(loaded: LoadedManifest, remaining: bool) -> TraceStore:
    """What the run will reuse: its own transcripts (unless the whole sweep is priced) and the runs
    ``run.reuse`` names (`runner.engine.reuse.open_store` decides the same for the run)."""
    if not loaded.reuses:
        return TraceStore.open([])
    named = loaded.reuse_dirs()
    return TraceStore.open(([loaded.run_dir()] if remaining else []) + named, required=named)


def _history(
    loaded: LoadedManifest, previous: list[Path] | None, own: LedgerSamples
) -> tuple[LedgerSamples, list[str]]:
    """Samples from earlier runs: those named (a ledger that cannot be read is an error), else the
    newest in the ledger folder (one that cannot be read, a torn or foreign file, is skipped and
    named in the notes: another run's damage must not stop this one)."""
    history, skipped = LedgerSamples(), []
    for run_dir in _previous_dirs(loaded) if previous is None else previous:
        own_read = own.sources and Path(run_dir).resolve() == loaded.run_dir().resolve()
        if own_read or not (Path(run_dir) / "ledger.jsonl").exists():
            continue
        try:
            history.read(Path(run_dir))
        except LedgerError as error:
            if previous is not None:
                raise
            skipped.append(f"history: skipped {run_dir} (its ledger cannot be read: {error})")
    return history, skipped


def _assemble(
    loaded: LoadedManifest,
    rows: list[tuple[EstimateRow, Priced]],
    own: LedgerSamples,
    history: LedgerSamples,
    state: LedgerState | None,
) -> Estimate:
    lanes = _lanes(loaded.manifest, rows)
    walls = [lane.min_wall_s for lane in lanes if lane.min_wall_s is not None]
    interval = None
    if rows and all(r.usd_interval is not None for r, _ in rows):
        half = math.sqrt(sum(p.half_interval() ** 2 for _, p in rows))  # groups vary independently
        expected = sum(r.usd.expected for r, _ in rows)
        interval = (max(expected - half, 0.0), expected + half)
    plain = [r for r, _ in rows]
    streamed, batched = _total([r.usd_stream for r in plain]), _total([r.usd_batch for r in plain])
    if interval is not None and loaded.manifest.run.mode == "batch" and streamed and batched:
        ratio = batched.expected / streamed.expected if streamed.expected else 0.5
        interval = (interval[0] * ratio, interval[1] * ratio)
    return Estimate(
        manifest=str(loaded.path),
        rows=plain,
        lanes=lanes,
        usd_low=sum(r.usd.low for r in plain),
        usd_expected=sum(r.usd.expected for r in plain),
        usd_high=sum(r.usd.high for r in plain),
        calls_high=int(sum(r.calls.high for r in plain)),
        min_wall_s=max(walls) if walls else None,
        notes=_notes(plain, own.sources + history.sources, state),
        jobs_done=len(state.completed_jobs) if state else 0,
        usd_spent=state.total_usd if state else 0.0,
        usd_interval=interval,
        usd_uncached=sum(r.usd_uncached for r in plain),
        reused_traces=sum(r.reused_traces for r in plain),
        usd_not_spent=sum(r.usd_not_spent for r in plain),
        mode=loaded.manifest.run.mode,
        usd_stream=streamed,
        usd_batch=batched,
        batch_waves=_waves(plain, loaded.manifest),
    )


def _total(spans: list[Span | None]) -> Span | None:
    """The sum of every row's span; None when a row has none (a provider with no batch interface)."""
    if any(s is None for s in spans):
        return None
    total = Span()
    for span in spans:
        assert span is not None
        total.add(span)
    return total


def _waves(rows: list[EstimateRow], m: Manifest) -> int:
    """How many batches follow one another in batch mode, each up to 24 h: a synthesis's pool
    traces, their answers and LEAP's principles, then the jobs' traces and their answers."""
    synthesis = [r for r in rows if r.synthesis_calls]
    waves = 2 if rows else 0
    if synthesis:
        waves += 3 if any(m.methods[r.method].kind == "leap" for r in synthesis) else 2
    return waves


def _rows(
    loaded: LoadedManifest,
    prices: dict[str, ModelPrice],
    own: LedgerSamples,
    history: LedgerSamples,
    groups: dict[tuple[str, str, str], Group],
) -> list[tuple[EstimateRow, Priced]]:
    """One row per (model, dataset, method) group that still has calls to make."""
    m = loaded.manifest
    rows = []
    for (model_key, dataset, method), group in groups.items():
        model = m.models[model_key]
        price = prices[model_key]
        identity = (model.model, Path(m.datasets[dataset].path).name, m.methods[method].kind)
        samples, source = _samples(own, history, identity, group)
        row, priced = _row(loaded, (model_key, dataset, method), group, price, samples, source)
        if row.calls.high or row.reused_traces:
            rows.append((row, priced))
    return rows


def _samples(
    own: LedgerSamples, history: LedgerSamples, identity: tuple[str, str, str], group: Group
) -> tuple[list[TraceSample], str]:
    """The samples a group is priced over, and where they came from."""
    if mine := own.by_identity.get(identity):
        return mine, f"this run ({len(mine)} jobs)"
    if theirs := history.by_identity.get(identity):
        return theirs, f"history ({len(theirs)} jobs)"
    return prior_samples(group.fidelity, group.answer_cap or 256), "prior"


def _row(
    loaded: LoadedManifest,
    key: tuple[str, str, str],
    group: Group,
    price: ModelPrice,
    samples: list[TraceSample],
    source: str,
) -> tuple[EstimateRow, Priced]:
    model_key, dataset, method = key
    setting = _setting(loaded, model_key, group.fidelity, group.jobs)
    priced = price_shapes(group.shapes, samples, setting, price)
    priced.add(_with_stored(group, samples, setting, price))
    synthesis_calls_n = 0
    if group.synthesis:
        pool_shapes, principles = _synthesis_shapes(group)
        priced.add(price_shapes(pool_shapes, samples, setting, price, low_length=LOW_POOL_TOKENS))
        priced.add(_principles(principles, samples, group.synthesis_budget, price))
        synthesis_calls_n = len(group.synthesis)
    priced.samples = len(samples)
    interval = None
    if source != "prior":
        half = priced.half_interval()
        interval = (max(priced.usd_expected - half, 0.0), priced.usd_expected + half)
    e, lo, hi = priced.expected, priced.low, priced.high
    stream = Span(low=priced.usd_low, expected=priced.usd_expected, high=priced.usd_high)
    batch_price = batch_rates(price)
    # batch mode makes the same calls (a trace's cap nearer its last budget) at the batch rates
    batch = (
        Span(low=lo.usd(batch_price), expected=e.usd(batch_price), high=high_usd(hi, batch_price))
        if batch_price is not None
        else None
    )
    usd = stream
    if loaded.manifest.run.mode == "batch" and batch is not None:
        ratio = batch.expected / stream.expected if stream.expected else 0.5
        usd, interval = batch, (interval[0] * ratio, interval[1] * ratio) if interval else None
    row = EstimateRow(
        provider=loaded.manifest.models[model_key].provider,
        model=model_key,
        dataset=dataset,
        method=method,
        fidelity=group.fidelity,
        jobs=group.jobs,
        synthesis_calls=synthesis_calls_n,
        calls=Span(low=lo.calls, expected=e.calls, high=hi.calls),
        input_tokens=Span(low=lo.input, expected=e.input, high=hi.input),
        output_tokens=Span(low=lo.output, expected=e.output, high=hi.output),
        usd=usd,
        expected_from=source,
        attempts_expected=e.attempts,
        cached_tokens=e.cached,
        usd_uncached=e.usd_uncached(batch_price if usd is batch and batch_price is not None else price),
        usd_interval=interval,
        reused_traces=group.served_jobs,
        reused_answers=group.answers_reused,
        usd_not_spent=group.usd_not_spent,
        usd_stream=stream,
        usd_batch=batch,
    )
    return row, priced


def _notes(rows: list[EstimateRow], sources: list[str], state: LedgerState | None) -> list[str]:
    """What the figures assume, where "expected" came from, and what a rerun leaves out."""
    notes = [
        "input: prompts counted exactly with each model's encoding, plus each forced answer's partial trace "
        "(at most its budget)",
        "high: every trace reaches its output cap, one answer per budget, every answer its cap, no cache hits",
        "expected: prompt-cache reads as each provider documents them, under the run's answer schedule",
        *[f"expected from {source}" for source in sources],
    ]
    if any(r.expected_from == "prior" for r in rows):
        notes.append(
            "prior (no run of these models seen): traces log-normal around 1,000 tokens (chain of thought) or "
            f"4,000 (reasoning), answers {ANSWER_FRACTION:.0%} of their cap; `--pilot N` measures them first"
        )
    if state is not None and state.completed_jobs:
        notes.append(
            f"{len(state.completed_jobs)} jobs already finished in the run's ledger "
            f"(${state.total_usd:.4f} spent) are left out: a rerun skips them"
        )
    if served := sum(r.reused_traces for r in rows):
        answers = sum(r.reused_answers for r in rows)
        notes.append(
            f"{served} jobs are served by traces already paid for (and {answers} of their answers): only "
            f"their new forced answers are priced; the stored calls cost ${sum(r.usd_not_spent for r in rows):.4f} "
            "where they were paid"
        )
    if any(r.synthesis_calls for r in rows):
        notes.append(
            "PDP/LEAP synthesis calls are included once per (model, dataset, method); the preface "
            "inside trace prompts is sized from the pool, as synthesis has not run yet"
        )
    return notes


def _previous_dirs(loaded: LoadedManifest) -> list[Path]:
    root = loaded.resolve(loaded.manifest.run.ledger_dir)
    if not root.is_dir():
        return []
    found = sorted(root.glob("*/ledger.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.parent for p in found[:HISTORY_RUNS]]


def _lanes(m: Manifest, rows: list[tuple[EstimateRow, Priced]]) -> list[LaneTime]:
    """Least wall time per provider: the stated limits are leaky buckets that start full, so at
    least (use - limit) / limit minutes pass, at the low use."""
    lanes = []
    for name, provider in m.providers.items():
        mine = [p for r, p in rows if r.provider == name]
        if not mine:
            continue
        rpm, tpm = provider.rpm, provider.tpm
        if served_by_simulator(provider):  # the simulator enforces its own limits too
            rpm = min((x for x in (rpm, m.simulator.rpm) if x is not None), default=None)
            tpm = min((x for x in (tpm, m.simulator.tpm) if x is not None), default=None)
        # the least use: no run sends fewer requests (or tokens) than the low case, retries aside
        least_calls = sum(p.low.calls for p in mine)
        least_tokens = sum(p.low.input + p.low.output for p in mine)
        bounds = [60.0 * max(least_calls - rpm, 0.0) / rpm] if rpm else []
        bounds += [60.0 * max(least_tokens - tpm, 0.0) / tpm] if tpm else []
        lanes.append(
            LaneTime(
                provider=name,
                rpm=rpm,
                tpm=tpm,
                calls=sum(p.expected.calls for p in mine),
                tokens=sum(p.expected.input + p.expected.output for p in mine),
                min_wall_s=max(bounds) if bounds else None,
                attempts=sum(p.expected.attempts for p in mine),
            )
        )
    return lanes


def confirm_needed(estimate: Estimate, manifest: Manifest) -> bool:
    """Whether `anytime run` must ask first: the high bound is above ``run.confirm_above_usd``."""
    return estimate.usd_high > manifest.run.confirm_above_usd
