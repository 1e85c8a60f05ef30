"""`anytime ledger summary|export|verify RUN`: read a run's ledger without running anything.

- ``summary``: calls, attempts, tokens and dollars by call kind for each problem, and totals
  (a call is one request a job decided to make; its attempts are what was sent, retries included).
- ``export --csv``: attempts or snapshots as CSV (stdout or ``--out``), for spreadsheets.
- ``verify``: recompute every dollar from its tokens and the run header's prices, re-add the
  totals, and check the records hold together (one header first, no duplicate call attempts, no
  job completed twice, snapshots of completed jobs). Reused calls (``reuse`` records) are not
  spend: their dollars not spent are recomputed the same way and counted apart. Exit 1 with a
  listing of every problem.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from runner.ledger.prices import ModelPrice, batch_rates, mixed_cost, reuse_usd, usage_cost
from runner.ledger.reader import ledger_path
from runner.ledger.records import Attempt, JobDone, Record, Reuse, RunHeader, Snapshot, Synthesis
from runner.types import PromptUsage, Usage

KINDS = ("trace", "answer", "synthesis")


# ---- summary --------------------------------------------------------------------------------


class SummaryRow(msgspec.Struct, kw_only=True):
    """Spend of one problem (or of a synthesis stage, or of jobs that never finished), by call kind.

    ``calls`` counts calls (one request a job decided to make); ``attempts`` counts what was sent
    for them, retries included, as every other view of the ledger does.
    """

    model: str
    dataset: str
    problem: str
    jobs: int = 0
    calls: dict[str, int] = msgspec.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    attempts: dict[str, int] = msgspec.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    tokens: dict[str, int] = msgspec.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    usd: dict[str, float] = msgspec.field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))

    @property
    def total_usd(self) -> float:
        return sum(self.usd.values())


def summarise(records: Iterable[Record]) -> list[SummaryRow]:
    """Rows per (model, dataset, problem), then synthesis stages and unfinished work, then a total."""
    where: dict[str, tuple[str, str, str]] = {}
    jobs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    by_job: dict[str, list[Attempt]] = defaultdict(list)
    for rec in records:
        if isinstance(rec, Attempt):
            by_job[rec.job_id].append(rec)
        elif isinstance(rec, JobDone):
            where[rec.job_id] = (rec.model, rec.dataset, rec.problem_id)
            jobs[where[rec.job_id]].add(rec.job_id)
        elif isinstance(rec, Synthesis):
            where[f"synthesis:{rec.key}"] = (rec.model, rec.dataset, f"synthesis ({rec.method})")
    rows: dict[tuple[str, str, str], SummaryRow] = {}
    total = SummaryRow(model="total", dataset="", problem="")
    for job_id, attempts in by_job.items():
        stage = ":".join(job_id.split(":", 2)[:2]) if job_id.startswith("synthesis:") else job_id
        key = where.get(stage) or ("?", "?", "synthesis (unfinished)" if stage != job_id else "unfinished jobs")
        row = rows.setdefault(key, SummaryRow(model=key[0], dataset=key[1], problem=key[2]))
        seen: set[str] = set()  # the attempts of one call share its call_id
        for a in attempts:
            first = a.call_id not in seen
            seen.add(a.call_id)
            for target in (row, total):
                target.calls[a.kind] += first
                target.attempts[a.kind] += 1
                target.tokens[a.kind] += a.billed_input + a.billed_output
                target.usd[a.kind] += a.usd
    for key, ids in jobs.items():
        rows.setdefault(key, SummaryRow(model=key[0], dataset=key[1], problem=key[2])).jobs = len(ids)
    total.jobs = sum(len(ids) for ids in jobs.values())
    ordered = sorted(
        rows.values(),
        key=lambda r: (r.problem.startswith(("synthesis", "unfinished")), r.model, r.dataset, _natural(r.problem)),
    )
    return [*ordered, total]


def _natural(text: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in "".join(c if c.isalnum() else " " for c in text).split())


# ---- export ---------------------------------------------------------------------------------


def export_csv(records: Iterable[Record], what: str, out: IO[str]) -> int:
    """Write attempts or snapshots as CSV with a header row; return how many rows were written."""
    kind = Attempt if what == "attempts" else Snapshot
    columns = list(kind.__struct_fields__)
    writer = csv.writer(out)
    writer.writerow(columns)
    count = 0
    for rec in records:
        if isinstance(rec, kind):
            writer.writerow(["" if v is None else v for v in (getattr(rec, c) for c in columns)])
            count += 1
    return count


# ---- verify ---------------------------------------------------------------------------------


@dataclass
class Verification:
    """What `verify` found: counts and every problem, each naming the line it is on."""

    records: int = 0
    attempts: int = 0
    usd_recorded: float = 0.0
    usd_recomputed: float = 0.0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reused: int = 0  # calls served from an earlier run's (not spend)
    usd_not_spent: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        head = (
            f"{self.records} records, {self.attempts} attempts, ${self.usd_recorded:.6f} recorded, "
            f"${self.usd_recomputed:.6f} recomputed from tokens and prices"
        )
        if self.reused:
            head += f"; {self.reused} calls reused, ${self.usd_not_spent:.6f} not spent"
        lines = [("ok: " if self.ok else f"FAILED ({len(self.problems)} problems): ") + head]
        lines += [f"  problem: {p}" for p in self.problems[:200]]
        if len(self.problems) > 200:
            lines.append(f"  ... and {len(self.problems) - 200} more")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def recompute(a: Attempt, price: ModelPrice) -> float:
    """An attempt's dollars from its own tokens, by the rule its ``priced_from`` names."""
    if a.priced_from == "unbilled":
        return 0.0
    if a.priced_from == "billed":
        return a.billed_usd if a.billed_usd is not None else math.nan
    if a.priced_from == "reported":
        if a.input_tokens is None or a.output_tokens is None:
            return math.nan
        usage = Usage(
            input_tokens=a.input_tokens,
            output_tokens=a.output_tokens,
            cached_input_tokens=a.cached_input_tokens or 0,
            cache_write_input_tokens=a.cache_write_input_tokens or 0,
        )
        return usage_cost(price, usage)
    if a.priced_from == "mixed":
        if a.input_tokens is None:
            return math.nan
        prompt = PromptUsage(
            input_tokens=a.input_tokens,
            cached_input_tokens=a.cached_input_tokens or 0,
            cache_write_input_tokens=a.cache_write_input_tokens or 0,
        )
        return mixed_cost(price, prompt, a.output_tokens_counted)
    return (a.input_tokens_counted * price.input + a.output_tokens_counted * price.output) / 1_000_000


def _lines(run_dir: Path, result: Verification) -> Iterator[tuple[int, Record]]:
    """Every record with its line number; a bad line is a problem, a torn tail a warning."""
    decoder = msgspec.json.Decoder(Record)
    with open(ledger_path(run_dir), "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                result.warnings.append(f"line {number}: torn final line ({len(line)} bytes), cut on next open")
                return
            try:
                yield number, decoder.decode(line)
            except msgspec.DecodeError as exc:
                result.problems.append(f"line {number}: not a ledger record: {exc}")


def verify(run_dir: Path) -> Verification:
    """Recompute every attempt's dollars and check the ledger's integrity."""
    result = Verification()
    prices: dict[str, ModelPrice] = {}
    seen_calls: dict[tuple[str, int], int] = {}
    done: dict[str, tuple[int, str]] = {}
    snapshots: list[tuple[int, Snapshot]] = []
    per_job: dict[str, float] = defaultdict(float)
    built: dict[str, int] = {}
    for number, rec in _lines(run_dir, result):
        result.records += 1
        if number == 1 and not isinstance(rec, RunHeader):
            result.problems.append("line 1: the ledger does not start with a run header")
        if isinstance(rec, RunHeader):
            prices = _header_prices(rec, number, result)
        elif isinstance(rec, Attempt):
            _check_attempt(rec, number, prices, seen_calls, result)
            per_job[rec.job_id] += rec.usd
        elif isinstance(rec, JobDone):
            _check_done(rec, number, done, result)
        elif isinstance(rec, Snapshot):
            snapshots.append((number, rec))
        elif isinstance(rec, Synthesis):
            _check_synthesis(rec, number, built, result)
        elif isinstance(rec, Reuse):
            _check_reuse(rec, number, prices, result)
    _check_snapshots(snapshots, done, result)
    if not _close(sum(per_job.values()), result.usd_recorded):
        result.problems.append(
            f"per-job totals ${sum(per_job.values()):.6f} differ from the attempt total ${result.usd_recorded:.6f}"
        )
    return result


def _check_done(rec: JobDone, number: int, done: dict[str, tuple[int, str]], result: Verification) -> None:
    """Record where a job completed, or report a second completion."""
    if rec.job_id in done:
        result.problems.append(
            f"line {number}: job {rec.job_id} completed twice (first on line "
            f"{done[rec.job_id][0]}): its results would count twice"
        )
    else:
        done[rec.job_id] = (number, rec.instance)


def _check_synthesis(rec: Synthesis, number: int, built: dict[str, int], result: Verification) -> None:
    """Record where a synthesis stage was built, or warn that it was built again."""
    if rec.key in built:
        result.warnings.append(
            f"line {number}: synthesis {rec.key} built again (first on line "
            f"{built[rec.key]}); its calls were paid twice"
        )
    built.setdefault(rec.key, number)


def _check_snapshots(
    snapshots: list[tuple[int, Snapshot]], done: dict[str, tuple[int, str]], result: Verification
) -> None:
    """Every completed job needs a snapshot of the execution it names; others' snapshots are ignored."""
    graded: set[tuple[str, str]] = set()
    for number, snap in snapshots:
        graded.add((snap.job_id, snap.instance))
        if snap.job_id not in done:
            result.warnings.append(f"line {number}: snapshot of job {snap.job_id} that never completed (ignored)")
    for job_id, (number, instance) in done.items():
        if (job_id, instance) not in graded:
            result.problems.append(
                f"line {number}: job {job_id} completed with no snapshot of its execution "
                f"{instance}: the report has nothing to count for it"
            )


def _check_reuse(rec: Reuse, number: int, prices: dict[str, ModelPrice], result: Verification) -> None:
    """A reused call's dollars not spent, recomputed from its tokens at the header's prices."""
    where = f"line {number}: reuse of {rec.source_call_id} ({rec.kind}, job {rec.job_id})"
    result.reused += rec.mode == "served"
    result.usd_not_spent += rec.usd
    if min(rec.input_tokens, rec.output_tokens, rec.resent_tokens) < 0 or rec.source_usd < 0:
        result.problems.append(f"{where}: negative tokens or dollars")
    price = prices.get(rec.model)
    if price is None:
        result.problems.append(f"{where}: model {rec.model!r} has no price in the run header before it")
        return
    tokens = (rec.input_tokens, rec.output_tokens, rec.resent_tokens)
    expected = 0.0 if rec.mode == "requested" else reuse_usd(price, *tokens, paid=rec.source_usd)
    if not _close(expected, rec.usd):
        result.problems.append(
            f"{where}: ${rec.usd:.8f} not spent recorded, ${expected:.8f} from its tokens at the header's prices"
        )


def _header_prices(header: RunHeader, number: int, result: Verification) -> dict[str, ModelPrice]:
    prices = {}
    for model, raw in header.prices.items():
        try:
            prices[model] = msgspec.convert(raw, ModelPrice)
        except msgspec.ValidationError as exc:
            result.problems.append(f"line {number}: run header price of {model!r} is malformed: {exc}")
    return prices


def _check_attempt(
    a: Attempt, number: int, prices: dict[str, ModelPrice], seen: dict[tuple[str, int], int], result: Verification
) -> None:
    result.attempts += 1
    result.usd_recorded += a.usd
    where = f"line {number}: call {a.call_id} attempt {a.attempt} ({a.kind}, job {a.job_id})"
    if (a.call_id, a.attempt) in seen:
        result.problems.append(f"{where}: duplicate of line {seen[(a.call_id, a.attempt)]}: spend counted twice")
    seen[(a.call_id, a.attempt)] = number
    counts = (
        a.input_tokens,
        a.cached_input_tokens,
        a.output_tokens,
        a.reasoning_tokens,
        a.input_tokens_counted,
        a.output_tokens_counted,
    )
    if any(c is not None and c < 0 for c in counts) or a.usd < 0:
        result.problems.append(f"{where}: negative tokens or dollars")
    price = prices.get(a.model)
    if price is not None and a.batch_key is not None:  # sent in a batch: priced at the batch rates
        price = batch_rates(price)
        if price is None:
            result.problems.append(f"{where}: sent in batch {a.batch_key} but the header has no batch price")
            return
    if price is None:
        result.problems.append(f"{where}: model {a.model!r} has no price in the run header before it")
        return
    expected = recompute(a, price)
    result.usd_recomputed += 0.0 if math.isnan(expected) else expected
    if math.isnan(expected):
        result.problems.append(f"{where}: priced_from={a.priced_from!r} but the numbers it names are missing")
    elif not _close(expected, a.usd):
        result.problems.append(
            f"{where}: ${a.usd:.8f} recorded, ${expected:.8f} from its {a.priced_from} tokens at the header's prices"
        )
    billable = a.priced_from != "unbilled"
    if (
        billable
        and a.usd == 0
        and (a.input_tokens_counted or a.output_tokens_counted)
        and (price.input or price.output)
    ):
        result.problems.append(f"{where}: tokens were sent but no dollars recorded")
    if not billable and a.http_status is not None and 200 <= a.http_status < 300:
        result.problems.append(f"{where}: marked unbilled, but the provider answered {a.http_status} and streamed")


__all__ = ["SummaryRow", "Verification", "export_csv", "recompute", "summarise", "verify"]
