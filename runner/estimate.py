"""`anytime estimate MANIFEST`: calls, tokens, dollars and minimum wall time, before any call.

Nothing here touches the network. Prompts are rendered the way the run renders them and counted
with the model's tiktoken encoding, so input tokens are exact except for the part no one can know
in advance: the partial trace inside each forced-answer prompt (at most its budget) and a PDP /
LEAP preface that synthesis has not built yet.

Output tokens come as a range per (provider, model, dataset, method):

- **high**: every trace runs to its output cap and gets one answer call per budget, every answer
  reaches its cap. Billing cannot exceed it (the spend cap relies on the same worst case).
- **expected**: the per-job averages of earlier ledgers of the same model and dataset file when
  there are any (`runner.estimate_history`), else the stated default fractions below.
- **low**: every trace stops at the first budget and gets one short answer.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from runner.estimate_history import History, KindStats, load_history
from runner.estimate_prompts import GroupPrompts, group_prompts
from runner.manifest import LoadedManifest, Manifest, load_manifest
from runner.pricing import PER, ModelPrice, PriceTable

# stated defaults, used when no earlier ledger of the same model and dataset exists
DEFAULT_TRACE_FRACTION = 0.5  # a trace ends at half its last budget
DEFAULT_ANSWER_FRACTION = 0.25  # a forced answer uses a quarter of its cap
LOW_ANSWER_TOKENS = 8
LEAP_PRINCIPLES_CAP = 1024


class Span(msgspec.Struct, kw_only=True):
    low: float = 0.0
    expected: float = 0.0
    high: float = 0.0

    def add(self, other: Span, times: float = 1.0) -> None:
        self.low += other.low * times
        self.expected += other.expected * times
        self.high += other.high * times


class EstimateRow(msgspec.Struct, kw_only=True):
    """One (provider, model, dataset, method) group."""

    provider: str
    model: str
    dataset: str
    method: str
    jobs: int
    calls: Span
    input_tokens: Span
    output_tokens: Span
    usd: Span
    expected_from: str  # "history: N jobs" or "default"


class LaneTime(msgspec.Struct, kw_only=True):
    provider: str
    rpm: int | None
    tpm: int | None
    calls: float
    tokens: float
    min_wall_s: float | None  # None: the lane states no limit


class Estimate(msgspec.Struct, kw_only=True):
    manifest: str
    rows: list[EstimateRow]
    lanes: list[LaneTime]
    usd_low: float
    usd_expected: float
    usd_high: float
    min_wall_s: float | None
    notes: list[str]


@dataclass
class _Cost:
    """Tokens of one kind of call, split the way prices split them."""

    calls: Span
    input: Span
    cached: Span
    output: Span

    @classmethod
    def empty(cls) -> _Cost:
        return cls(Span(), Span(), Span(), Span())

    def usd(self, price: ModelPrice) -> Span:
        cached_price = price.cached_input if price.cached_input is not None else price.input

        def one(inp: float, cached: float, out: float) -> float:
            return ((inp - cached) * price.input + cached * cached_price + out * price.output) / PER

        c, i, o = self.cached, self.input, self.output
        # high never assumes a cache hit: it must bound the bill
        return Span(low=one(i.low, c.low, o.low), expected=one(i.expected, c.expected, o.expected),
                    high=one(i.high, 0.0, o.high))


def estimate_manifest(loaded: LoadedManifest, *, previous: list[Path] | None = None) -> Estimate:
    """Price a manifest offline.

    Args:
        loaded: the validated manifest.
        previous: run folders whose ledgers give expected token use; None looks in the
            manifest's ledger folder, [] uses the stated defaults only.

    Raises:
        PriceError: a selected model has no price.
    """
    m = loaded.manifest
    prices = PriceTable.load()
    history = load_history(_previous_dirs(loaded) if previous is None else previous)
    rows: list[EstimateRow] = []
    for model_key in loaded.selected("models"):
        model = m.models[model_key]
        price = prices.price_for(model_key, model, m.providers[model.provider].kind)
        for dataset in loaded.selected("datasets"):
            for method in loaded.selected("methods"):
                prompts = group_prompts(loaded, model_key, dataset, method)
                rows.append(_row(loaded, model_key, dataset, method, prompts, price, history))
    lanes = _lanes(m, rows)
    walls = [lane.min_wall_s for lane in lanes if lane.min_wall_s is not None]
    notes = [
        "input tokens: prompts counted exactly with each model's encoding; a forced answer adds its partial "
        "trace (at most its budget)",
        f"expected without history: traces end at {DEFAULT_TRACE_FRACTION:.0%} of the last budget, answers "
        f"use {DEFAULT_ANSWER_FRACTION:.0%} of their cap",
        "high: every trace reaches its output cap, one answer per budget, every answer its cap, no cache hits",
        *history.sources,
    ]
    if any(r.method != "cot" and m.methods[r.method].kind != "cot" for r in rows):
        notes.append("PDP/LEAP: the preface is not built yet; its size is estimated from the pool and budget")
    return Estimate(
        manifest=str(loaded.path), rows=rows, lanes=lanes,
        usd_low=sum(r.usd.low for r in rows), usd_expected=sum(r.usd.expected for r in rows),
        usd_high=sum(r.usd.high for r in rows), min_wall_s=max(walls) if walls else None, notes=notes,
    )


def _previous_dirs(loaded: LoadedManifest) -> list[Path]:
    root = loaded.resolve(loaded.manifest.run.ledger_dir)
    if not root.is_dir():
        return []
    found = [p.parent for p in root.glob("*/ledger.jsonl")]
    return sorted(found, key=lambda p: (p / "ledger.jsonl").stat().st_mtime, reverse=True)[:20]


def _row(
    loaded: LoadedManifest, model_key: str, dataset: str, method: str, prompts: GroupPrompts,
    price: ModelPrice, history: History,
) -> EstimateRow:
    m = loaded.manifest
    model = m.models[model_key]
    budgets = loaded.budgets_for(dataset)
    past = history.find(model.model, Path(m.datasets[dataset].path).name, m.methods[method].kind)
    per_job = _job_cost(prompts, budgets, past)
    total = _Cost.empty()
    for part in ("calls", "input", "cached", "output"):
        getattr(total, part).add(getattr(per_job, part), prompts.jobs)
    synth = _synthesis_cost(loaded, method, prompts, past)
    for part in ("calls", "input", "cached", "output"):
        getattr(total, part).add(getattr(synth, part))
    return EstimateRow(
        provider=model.provider, model=model_key, dataset=dataset, method=method, jobs=prompts.jobs,
        calls=total.calls, input_tokens=total.input, output_tokens=total.output, usd=total.usd(price),
        expected_from=f"history: {past.jobs} jobs" if past else "default",
    )


def _job_cost(p: GroupPrompts, budgets: tuple[int, ...], past: KindStats | None) -> _Cost:
    """Tokens of one evaluated job (its trace and its forced answers, or hidden per-budget calls)."""
    k, first, last = len(budgets), budgets[0], budgets[-1]
    cost = _Cost.empty()
    if p.hidden:
        length = DEFAULT_TRACE_FRACTION * last
        cost.calls = Span(low=k, expected=k, high=k)
        cost.input = Span(low=k * p.trace_input, expected=k * p.trace_input, high=k * p.trace_input)
        cost.output = Span(low=sum(min(b, first) for b in budgets),
                           expected=sum(min(b, length) for b in budgets), high=sum(budgets))
    else:
        trace_cap = last + (p.trace_answer_tokens if p.traced == "reasoning" else 0)
        length = DEFAULT_TRACE_FRACTION * last
        distinct = sum(1 for b in budgets if b < length) + (1 if any(b >= length for b in budgets) else 0)
        cuts = sum(min(b, length) for b in budgets if b < length) + (length if distinct > 0 else 0)
        cost.calls = Span(low=2, expected=1 + distinct, high=1 + k)
        cost.input = Span(low=p.trace_input + p.answer_input + first,
                          expected=p.trace_input + distinct * p.answer_input + cuts,
                          high=p.trace_input + k * p.answer_input + sum(budgets))
        cost.output = Span(low=first + LOW_ANSWER_TOKENS,
                           expected=length + distinct * DEFAULT_ANSWER_FRACTION * p.answer_cap,
                           high=trace_cap + k * p.answer_cap)
    if past is not None:
        cost.calls.expected = past.calls_per_job
        cost.input.expected = past.input_per_job
        cost.output.expected = past.output_per_job
        cost.cached.expected = past.cached_per_job
    cost.output.expected = min(cost.output.expected, cost.output.high)
    return cost


def _synthesis_cost(loaded: LoadedManifest, method: str, p: GroupPrompts, past: KindStats | None) -> _Cost:
    """PDP / LEAP: pool x k traces at the synthesis budget and pool x k answers, once per group."""
    cost = _Cost.empty()
    if not p.synthesis_calls_traces:
        return cost
    params = loaded.manifest.methods[method]
    n, sb = p.synthesis_calls_traces, p.synthesis_budget
    trace_cap = sb if p.hidden else sb + (p.trace_answer_tokens if p.traced == "reasoning" else 0)
    answers = 0 if p.hidden else n
    leap = 1 if params.kind == "leap" else 0
    calls = n + answers + leap
    inp_high = n * p.pool_trace_input + answers * (p.answer_input + sb) + leap * n * sb
    out_high = n * trace_cap + answers * p.answer_cap + leap * LEAP_PRINCIPLES_CAP
    cost.calls = Span(low=calls, expected=calls, high=calls)
    cost.input = Span(low=n * p.pool_trace_input + answers * p.answer_input,
                      expected=n * p.pool_trace_input + answers * (p.answer_input + sb), high=inp_high)
    cost.output = Span(low=n * min(sb, p.trace_answer_tokens) + answers * LOW_ANSWER_TOKENS,
                       expected=DEFAULT_TRACE_FRACTION * out_high, high=out_high)
    if past is not None and past.synthesis_groups:
        cost.calls.expected = past.synthesis_calls
        cost.input.expected = past.synthesis_input
        cost.cached.expected = past.synthesis_cached
        cost.output.expected = min(past.synthesis_output, out_high)
    return cost


def _lanes(m: Manifest, rows: list[EstimateRow]) -> list[LaneTime]:
    """Minimum wall time per lane: max(calls / RPM, tokens / TPM) at the expected use."""
    lanes = []
    for name, provider in m.providers.items():
        mine = [r for r in rows if r.provider == name]
        if not mine:
            continue
        rpm, tpm = provider.rpm, provider.tpm
        if provider.kind == "sim":
            rpm = min(x for x in (rpm, m.simulator.rpm, 10**12) if x is not None)
            tpm = min(x for x in (tpm, m.simulator.tpm, 10**15) if x is not None)
            rpm = None if rpm == 10**12 else rpm
            tpm = None if tpm == 10**15 else tpm
        calls = sum(r.calls.expected for r in mine)
        tokens = sum(r.input_tokens.expected + r.output_tokens.expected for r in mine)
        bounds = [60.0 * calls / rpm] if rpm else []
        bounds += [60.0 * tokens / tpm] if tpm else []
        lanes.append(LaneTime(provider=name, rpm=rpm, tpm=tpm, calls=calls, tokens=tokens,
                              min_wall_s=max(bounds) if bounds else None))
    return lanes


def confirm_needed(estimate: Estimate, manifest: Manifest) -> bool:
    """Whether `anytime run` must ask before spending: the high bound is above the threshold."""
    return estimate.usd_high > manifest.run.confirm_above_usd


# ---- output --------------------------------------------------------------------------------


def _tokens(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e4 else f"{math.ceil(x):,}"


def _wall(seconds: float | None) -> str:
    if seconds is None:
        return "unlimited"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}min" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def print_estimate(estimate: Estimate, console: Console) -> None:
    """The full table: one row per group, totals, lanes and the assumptions."""
    table = Table(title=f"Estimate for {estimate.manifest}", show_lines=False)
    for col in ("provider", "model", "dataset", "method", "jobs", "calls", "input tok (exp / high)",
                "output tok (low / exp / high)", "USD (low / exp / high)", "expected from"):
        table.add_column(col, justify="right" if col in ("jobs", "calls") else "left")
    for r in estimate.rows:
        table.add_row(
            r.provider, r.model, r.dataset, r.method, str(r.jobs), f"{r.calls.expected:.0f}–{r.calls.high:.0f}",
            f"{_tokens(r.input_tokens.expected)} / {_tokens(r.input_tokens.high)}",
            f"{_tokens(r.output_tokens.low)} / {_tokens(r.output_tokens.expected)} / {_tokens(r.output_tokens.high)}",
            f"${r.usd.low:.4f} / ${r.usd.expected:.4f} / ${r.usd.high:.4f}", r.expected_from,
        )
    console.print(table)
    for lane in estimate.lanes:
        console.print(f"lane {lane.provider}: {lane.calls:,.0f} calls, {_tokens(lane.tokens)} tokens expected; "
                      f"rpm {lane.rpm or '-'}, tpm {lane.tpm or '-'} → at least {_wall(lane.min_wall_s)}")
    print_estimate_summary(estimate, console)
    for note in estimate.notes:
        console.print(f"[dim]· {note}[/]")


def print_estimate_summary(estimate: Estimate, console: Console) -> None:
    """One line: the dollar range and the minimum wall time (shown by `anytime run`)."""
    console.print(
        f"Estimated cost: [bold]${estimate.usd_expected:.4f}[/] expected "
        f"(low ${estimate.usd_low:.4f}, high ${estimate.usd_high:.4f}); "
        f"minimum wall time {_wall(estimate.min_wall_s)}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="sweep manifest (TOML)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument("--from", dest="previous", action="append", metavar="RUN", default=None,
                        help="run folder whose ledger gives expected token use (repeatable; default: the "
                        "manifest's ledger folder)")
    parser.add_argument("--no-history", action="store_true", help="ignore earlier ledgers; use the defaults")


def main(args: argparse.Namespace) -> int:
    loaded = load_manifest(args.manifest)
    previous = [] if args.no_history else ([Path(p) for p in args.previous] if args.previous else None)
    estimate = estimate_manifest(loaded, previous=previous)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(estimate).decode()))
    else:
        print_estimate(estimate, Console())
    return 0
