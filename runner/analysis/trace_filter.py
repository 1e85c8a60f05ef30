"""Choosing and ordering the traces of a run: by cell, by the grade at a budget, by a flip between
two budgets, by failed calls, and against another cell on the same problems.

A trace is *right* at a budget when its score there is full (1.0; partial credit is not right)
and *wrong* otherwise. The comparison with another cell works per problem at the same budget:
``versus="wrong"`` keeps a trace when no sample of the other cell is right on its problem (it
never solves it there), ``versus="right"`` when every sample of the other cell is.

Example, "the problems `reasoner` solves at 512 tokens and `cot` does not"::

    TraceFilter(model="reasoner", budget=512, outcome="right", versus_model="cot", versus="wrong")
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from runner.analysis.traces import TraceRow
from runner.errors import ConfigError

Outcome = Literal["right", "wrong"]
Flip = Literal["gained", "lost", "changed"]
SortKey = Literal[
    "problem", "model", "method", "usd", "tokens", "input_tokens", "output_tokens", "trace_tokens", "calls", "retries"
]
FULL = 1.0 - 1e-9


class TraceFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    model: str | None = None
    method: str | None = None
    dataset: str | None = None
    problem: str | None = None  # a part of the problem id
    budget: int | None = None  # with `outcome`, and the budget `versus` compares at
    outcome: Outcome | None = None
    flip_from: int | None = None
    flip_to: int | None = None
    flip: Flip | None = None
    failed: bool = False  # only traces with a failed attempt (error, truncated, interrupted) or no completion
    versus_model: str | None = None  # the other cell: its model (default: the trace's own)
    versus_method: str | None = None  # ... and its method (default: the trace's own)
    versus: Outcome | None = None
    sort: SortKey = "problem"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.outcome is not None and self.budget is None:
            raise ValueError("`outcome` needs a `budget`")
        if self.versus is not None and self.budget is None:
            raise ValueError("`versus` needs a `budget` to compare at")
        if self.versus is not None and self.versus_model is None and self.versus_method is None:
            raise ValueError("`versus` needs `versus_model` or `versus_method` (the other cell)")
        if self.flip is not None and (self.flip_from is None or self.flip_to is None):
            raise ValueError("`flip` needs `flip_from` and `flip_to`")


def parse_filter(query: dict[str, str]) -> TraceFilter:
    """A filter from text fields (a URL's query); empty fields are left out.

    Raises:
        ConfigError: an unknown field, a value of the wrong kind, or fields that need each other.
    """
    fields = {k: v for k, v in query.items() if v != ""}
    if "failed" in fields:
        fields["failed"] = str(fields["failed"].lower() in ("1", "true", "yes", "on")).lower()
    if "descending" in fields:
        fields["descending"] = str(fields["descending"].lower() in ("1", "true", "yes", "on")).lower()
    try:
        return msgspec.convert(fields, TraceFilter, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"problem filter: {exc}") from None


def _right(score: float) -> bool:
    return score >= FULL


def _outcome_of(row: TraceRow, budget: int | None) -> Outcome | None:
    cut = row.cut_at(budget)
    return None if cut is None else ("right" if _right(cut.score) else "wrong")


def _flipped(row: TraceRow, start: int | None, end: int | None, flip: Flip) -> bool:
    before, after = _outcome_of(row, start), _outcome_of(row, end)
    if before is None or after is None or before == after:
        return False
    return flip == "changed" or (flip == "gained") == (after == "right")


def _versus_index(rows: Sequence[TraceRow], budget: int) -> dict[tuple[str, str, str, str], list[bool]]:
    """(model, method, dataset, problem) -> whether each sample is right at ``budget``."""
    index: defaultdict[tuple[str, str, str, str], list[bool]] = defaultdict(list)
    for row in rows:
        cut = row.cut_at(budget)
        if cut is not None:
            index[(row.model, row.method, row.dataset, row.problem_id)].append(_right(cut.score))
    return index


def select(rows: Sequence[TraceRow], f: TraceFilter) -> list[TraceRow]:
    """The rows the filter keeps, in its order."""
    tests: list[Callable[[TraceRow], bool]] = []
    cell = {name: getattr(f, name) for name in ("model", "method", "dataset") if getattr(f, name) is not None}
    if cell:
        tests.append(lambda r: all(getattr(r, name) == wanted for name, wanted in cell.items()))
    part = (f.problem or "").lower()
    if part:
        tests.append(lambda r: part in r.problem_id.lower())
    if f.outcome is not None:
        tests.append(lambda r: _outcome_of(r, f.budget) == f.outcome)
    if f.flip is not None:
        tests.append(lambda r: _flipped(r, f.flip_from, f.flip_to, f.flip or "changed"))
    if f.failed:
        tests.append(lambda r: r.failed_attempts > 0 or r.state != "done")
    if f.versus is not None and f.budget is not None:
        tests.append(_versus_test(rows, f))
    kept = [r for r in rows if all(test(r) for test in tests)]
    return sorted(kept, key=_sort_key(f.sort), reverse=f.descending)


def _versus_test(rows: Sequence[TraceRow], f: TraceFilter) -> Callable[[TraceRow], bool]:
    index = _versus_index(rows, f.budget or 0)

    def test(r: TraceRow) -> bool:
        other = index.get((f.versus_model or r.model, f.versus_method or r.method, r.dataset, r.problem_id))
        if not other:
            return False
        return not any(other) if f.versus == "wrong" else all(other)

    return test


def _sort_key(key: SortKey) -> Callable[[TraceRow], tuple[object, ...]]:
    text = {"problem": "problem_id", "model": "model", "method": "method"}

    def value(r: TraceRow) -> tuple[object, ...]:
        first = getattr(r, text[key]) if key in text else (getattr(r, key) or 0)
        return (first, r.dataset, r.problem_id, r.model, r.method, r.sample)

    return value
