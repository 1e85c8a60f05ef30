"""`anytime estimate MANIFEST`: price a sweep offline, before anything is spent.

Input tokens are counted exactly with the model's tiktoken encoding on the real prompts (trace
prompts as rendered; forced-answer prompts as their template plus the cut's tokens). Output is a
range: **high** = every trace runs to its last budget and every answer to its cap (the bound the
spend cap also uses); **low** = every trace ends at its first budget with one short answer;
**expected** = the per-job means of a previous ledger of the same model and dataset when one
exists (the run's own folder, or `--from RUN`), else traces to their last budget and answers at a
quarter of their cap. PDP / LEAP synthesis calls are included. Wall time: the least the rate
limits allow (max of calls/RPM and admitted tokens/TPM per provider).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from runner.encodings import resolve_encoding
from runner.manifest import LoadedManifest, Manifest, load_manifest
from runner.plan import get_task, load_problems, synthesis_budget, synthesis_pool
from runner.pricing import ModelPrice, PriceTable
from runner.tokens import count_chat_tokens

DEFAULT_ANSWER_FRACTION = 0.25


class Row(msgspec.Struct, kw_only=True):
    provider: str
    model: str
    dataset: str
    method: str
    fidelity: str
    jobs: int
    calls_low: int
    calls_high: int
    synthesis_calls: int
    input_tokens: int  # at the high end (answer prompts hold full cuts)
    output_low: int
    output_expected: int
    output_high: int
    usd_low: float
    usd_expected: float
    usd_high: float
    expected_from: str  # "ledger <run>" or "default"


class ProviderTime(msgspec.Struct, kw_only=True):
    provider: str
    calls: int
    admitted_tokens: int
    rpm: int | None
    tpm: int | None
    min_wall_s: float | None  # None: no limits known before the run


class Estimate(msgspec.Struct, kw_only=True):
    manifest: str
    rows: list[Row]
    providers: list[ProviderTime]
    notes: list[str] = msgspec.field(default_factory=list)

    @property
    def usd_low(self) -> float:
        return sum(r.usd_low for r in self.rows)

    @property
    def usd_expected(self) -> float:
        return sum(r.usd_expected for r in self.rows)

    @property
    def usd_high(self) -> float:
        return sum(r.usd_high for r in self.rows)

    @property
    def calls_high(self) -> int:
        return sum(r.calls_high for r in self.rows)

    @property
    def min_wall_s(self) -> float | None:
        known = [p.min_wall_s for p in self.providers if p.min_wall_s is not None]
        return max(known) if known else None


@dataclass
class History:
    """Per-job means from earlier ledgers, by (model id, dataset kind)."""

    usd_per_job: dict[tuple[str, str], float] = field(default_factory=dict)
    output_per_job: dict[tuple[str, str], float] = field(default_factory=dict)
    runs: dict[tuple[str, str], str] = field(default_factory=dict)


def read_history(run_dirs: list[Path]) -> History:
    from runner.ledger import iter_records
    from runner.records import Attempt, JobDone, RunHeader

    history = History()
    for run_dir in run_dirs:
        if not (run_dir / "ledger.jsonl").exists():
            continue
        model_ids: dict[str, str] = {}
        dataset_kinds: dict[str, str] = {}
        usd: dict[str, float] = defaultdict(float)
        out: dict[str, float] = defaultdict(float)
        jobs: dict[str, tuple[str, str]] = {}
        for rec in iter_records(run_dir):
            if isinstance(rec, RunHeader):
                models = rec.manifest.get("models", {})
                datasets = rec.manifest.get("datasets", {})
                model_ids.update({k: v["model"] for k, v in models.items()})  # type: ignore[index, union-attr]
                dataset_kinds.update({k: v["kind"] for k, v in datasets.items()})  # type: ignore[index, union-attr]
            elif isinstance(rec, Attempt) and not rec.job_id.startswith("synthesis:"):
                usd[rec.job_id] += rec.usd
                out[rec.job_id] += rec.output_tokens if rec.output_tokens is not None else rec.output_tokens_counted
            elif isinstance(rec, JobDone):
                jobs[rec.job_id] = (model_ids.get(rec.model, rec.model), dataset_kinds.get(rec.dataset, rec.dataset))
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        for job_id, key in jobs.items():
            grouped[key].append(job_id)
        for key, ids in grouped.items():
            history.usd_per_job[key] = sum(usd[j] for j in ids) / len(ids)
            history.output_per_job[key] = sum(out[j] for j in ids) / len(ids)
            history.runs[key] = run_dir.name
    return history


def _cost(price: ModelPrice, input_tokens: float, output_tokens: float) -> float:
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


def estimate_manifest(loaded: LoadedManifest, *, previous: list[Path] | None = None) -> Estimate:
    """Price every (model, dataset, method) of a manifest without any network call."""
    from runner.fidelity import default_fidelity
    from runner.methods import answer_messages, get_method
    from runner.sim.models import BUILTIN_MODELS
    from runner.sweep import run_dir_for, uses_sim_provider

    m = loaded.manifest
    prices = PriceTable.load()
    history = read_history([*list(previous or []), run_dir_for(loaded)])
    rows: list[Row] = []
    per_provider: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    notes: list[str] = []
    for model_key in loaded.selected("models"):
        model = m.models[model_key]
        provider = m.providers[model.provider]
        price = prices.price_for(model_key, model, provider.kind)
        encoding = resolve_encoding(model.encoding, model.model, m.run.on_missing_encoding).encoding
        sim = BUILTIN_MODELS.get(model.model) if uses_sim_provider(loaded, model.provider) else None
        fidelity = model.fidelity or default_fidelity(
            model.model, sim.reasoning if sim else None, sim.profile if sim else None
        )
        for dataset in loaded.selected("datasets"):
            task = get_task(m.datasets[dataset].kind)
            problems = load_problems(loaded, dataset)
            budgets = loaded.budgets_for(dataset)
            answer_cap = max(model.answer_max_tokens, task.answer_max_tokens)
            for method_key in loaded.selected("methods"):
                params = m.methods[method_key]
                method = get_method(params.kind, params)
                samples = m.sweep.samples
                jobs = len(problems) * samples
                preface = None
                synth_calls = synth_in = synth_out = 0
                if method.needs_synthesis:
                    pool = synthesis_pool(loaded, dataset)
                    sb = synthesis_budget(loaded, method_key, dataset)
                    pool_prompt = sum(
                        count_chat_tokens(encoding, method.trace_messages(task, task.render(p, 0), None)) for p in pool
                    )
                    synth_calls = 2 * len(pool) * params.k
                    answer_base = count_chat_tokens(encoding, answer_messages(task, task.render(pool[0], 0), ""))
                    synth_in = params.k * (pool_prompt + len(pool) * (answer_base + sb))
                    synth_out = params.k * len(pool) * (sb + answer_cap)
                    shown = params.m * (1 if params.kind == "pdp_plus" else 2)
                    preface = "x " * (shown * (sb + 40))  # stands in for the pairs: their tokens, not their text
                trace_in = (
                    sum(
                        count_chat_tokens(encoding, method.trace_messages(task, task.render(p, 0), preface))
                        for p in problems
                    )
                    * samples
                )
                answer_base = (
                    sum(count_chat_tokens(encoding, answer_messages(task, task.render(p, 0), "")) for p in problems)
                    * samples
                )
                if fidelity == "hidden":
                    calls_high = calls_low = jobs * len(budgets)
                    in_high = trace_in * len(budgets)
                    out_high = jobs * sum(budgets)
                    out_low = jobs * len(budgets) * 8
                    out_default = out_high
                else:
                    trace_cap = budgets[-1] + (model.trace_answer_tokens if fidelity != "content" else 0)
                    calls_high, calls_low = jobs * (1 + len(budgets)), jobs * 2
                    in_high = trace_in + answer_base * len(budgets) + jobs * sum(budgets)
                    out_high = jobs * (trace_cap + len(budgets) * answer_cap)
                    out_low = jobs * (budgets[0] + 8)
                    out_default = jobs * (budgets[-1] + len(budgets) * answer_cap * DEFAULT_ANSWER_FRACTION)
                usd_high = _cost(price, in_high, out_high) + _cost(price, synth_in, synth_out)
                usd_low = _cost(price, trace_in + answer_base, out_low) + _cost(price, synth_in, synth_out) * 0.25
                key = (model.model, m.datasets[dataset].kind)
                if key in history.usd_per_job:
                    usd_expected = history.usd_per_job[key] * jobs + _cost(price, synth_in, synth_out) * 0.6
                    out_expected = int(history.output_per_job[key] * jobs)
                    source = f"ledger {history.runs[key]}"
                else:
                    out_expected = int(out_default)
                    usd_expected = _cost(price, in_high, out_default) + _cost(price, synth_in, synth_out) * 0.6
                    source = "default"
                rows.append(
                    Row(
                        provider=model.provider,
                        model=model_key,
                        dataset=dataset,
                        method=method_key,
                        fidelity=fidelity,
                        jobs=jobs,
                        calls_low=calls_low + synth_calls,
                        calls_high=calls_high + synth_calls,
                        synthesis_calls=synth_calls,
                        input_tokens=in_high + synth_in,
                        output_low=out_low,
                        output_expected=out_expected,
                        output_high=out_high + synth_out,
                        usd_low=usd_low,
                        usd_expected=min(usd_expected, usd_high),
                        usd_high=usd_high,
                        expected_from=source,
                    )
                )
                per_provider[model.provider][0] += calls_high + synth_calls
                # admission charges each call its prompt plus its output cap (as OpenAI counts TPM)
                per_provider[model.provider][1] += in_high + synth_in + out_high + synth_out
    providers = []
    for name, (calls, admitted) in per_provider.items():
        p = m.providers[name]
        bounds = [
            x
            for x in (calls / p.rpm * 60 if p.rpm else None, admitted / p.tpm * 60 if p.tpm else None)
            if x is not None
        ]
        providers.append(
            ProviderTime(
                provider=name,
                calls=calls,
                admitted_tokens=admitted,
                rpm=p.rpm,
                tpm=p.tpm,
                min_wall_s=max(bounds) if bounds else None,
            )
        )
    if any(r.expected_from == "default" for r in rows):
        notes.append(
            f"expected (no earlier ledger): traces run to their last budget, answers use "
            f"{DEFAULT_ANSWER_FRACTION:.0%} of their cap; pass --from RUN to calibrate on a previous run"
        )
    if any(r.synthesis_calls for r in rows):
        notes.append("PDP/LEAP synthesis calls are included once per (model, dataset, method)")
    return Estimate(manifest=str(loaded.path), rows=rows, providers=providers, notes=notes)


def confirm_needed(estimate: Estimate, manifest: Manifest) -> bool:
    return estimate.usd_high > manifest.run.confirm_above_usd


def _tokens(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 1 else f"${x:.4f}"


def _duration(s: float | None) -> str:
    if s is None:
        return "unknown (limits are learned from headers at run time)"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def print_estimate_summary(estimate: Estimate, console: Console) -> None:
    console.print(
        f"[bold]Estimate[/]: up to {estimate.calls_high:,} calls; expected {_usd(estimate.usd_expected)} "
        f"(low {_usd(estimate.usd_low)}, high {_usd(estimate.usd_high)}); "
        f"at least {_duration(estimate.min_wall_s)} under the rate limits"
    )


def print_estimate(estimate: Estimate, console: Console) -> None:
    table = Table(title=f"Estimate for {Path(estimate.manifest).name}", title_justify="left")
    for col in (
        "model",
        "dataset",
        "method",
        "fidelity",
        "jobs",
        "calls",
        "input tok",
        "output tok low/exp/high",
        "$ low",
        "$ expected",
        "$ high",
        "expected from",
    ):
        table.add_column(
            col, justify="right" if col not in ("model", "dataset", "method", "fidelity", "expected from") else "left"
        )
    for r in estimate.rows:
        table.add_row(
            r.model,
            r.dataset,
            r.method,
            r.fidelity,
            str(r.jobs),
            f"{r.calls_low:,}–{r.calls_high:,}",
            _tokens(r.input_tokens),
            f"{_tokens(r.output_low)} / {_tokens(r.output_expected)} / {_tokens(r.output_high)}",
            _usd(r.usd_low),
            _usd(r.usd_expected),
            _usd(r.usd_high),
            r.expected_from,
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        "",
        str(sum(r.jobs for r in estimate.rows)),
        f"{estimate.calls_high:,}",
        "",
        "",
        _usd(estimate.usd_low),
        _usd(estimate.usd_expected),
        _usd(estimate.usd_high),
        "",
    )
    console.print(table)
    for p in estimate.providers:
        console.print(
            f"  {p.provider}: {p.calls:,} calls, {_tokens(p.admitted_tokens)} admitted tokens, "
            f"rpm {p.rpm or '?'}, tpm {p.tpm or '?'}: at least {_duration(p.min_wall_s)}"
        )
    for note in estimate.notes:
        console.print(f"  note: {note}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="sweep manifest (TOML)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument(
        "--from",
        dest="previous",
        action="append",
        default=[],
        metavar="RUN",
        help="calibrate 'expected' on this earlier run folder (repeatable)",
    )


def main(args: argparse.Namespace) -> int:
    loaded = load_manifest(args.manifest)
    estimate = estimate_manifest(loaded, previous=[Path(p) for p in args.previous])
    if args.json:
        data = msgspec.to_builtins(estimate)
        data.update(
            usd_low=estimate.usd_low,
            usd_expected=estimate.usd_expected,
            usd_high=estimate.usd_high,
            min_wall_s=estimate.min_wall_s,
        )
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print_estimate(estimate, Console())
    return 0
