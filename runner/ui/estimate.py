"""The estimate on a terminal: the one-line summary `anytime run` prints, and the full table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from runner.ledger.estimate import Estimate


def _tok(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else f"{n:,.0f}"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 1 else f"${x:.4f}"


def _duration(s: float | None) -> str:
    if s is None:
        return "unknown (no limits stated; they are learned from headers at run time)"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def print_estimate_summary(estimate: Estimate, console: Console) -> None:
    """One line for `anytime run`: the dollar range, calls and the least wall time."""
    done = (
        f" for what is left ({estimate.jobs_done:,} jobs already done, {_usd(estimate.usd_spent)} spent)"
        if estimate.jobs_done
        else ""
    )
    if estimate.jobs_done and not estimate.calls_high:
        console.print(
            f"[bold]Estimate[/]: nothing left to run ({estimate.jobs_done:,} jobs done, "
            f"{_usd(estimate.usd_spent)} spent): a rerun only rebuilds the report"
        )
        return
    console.print(
        f"[bold]Estimate[/]{done}: up to {estimate.calls_high:,} calls; expected {_usd(estimate.usd_expected)} "
        f"(low {_usd(estimate.usd_low)}, high {_usd(estimate.usd_high)}); "
        + (
            f"at least {_duration(estimate.min_wall_s)} under the rate limits"
            if estimate.min_wall_s is not None
            else "no rate limits stated (they are learned from headers at run time)"
        )
    )


def print_estimate(estimate: Estimate, console: Console) -> None:
    """The table: one row per group, a total, the lanes' wall time and the assumptions."""
    table = Table(title=f"Estimate for {Path(estimate.manifest).name}", title_justify="left")
    for col in (
        "provider",
        "model",
        "dataset",
        "method",
        "fidelity",
        "jobs",
        "calls",
        "input tok exp / high",
        "output tok low / exp / high",
        "$ low",
        "$ expected",
        "$ high",
        "expected from",
    ):
        table.add_column(col, justify="right" if col in ("jobs", "calls") or col.startswith("$") else "left")
    for r in estimate.rows:
        table.add_row(
            r.provider,
            r.model,
            r.dataset,
            r.method,
            r.fidelity,
            str(r.jobs),
            f"{r.calls.low:,.0f}–{r.calls.high:,.0f}",
            f"{_tok(r.input_tokens.expected)} / {_tok(r.input_tokens.high)}",
            f"{_tok(r.output_tokens.low)} / {_tok(r.output_tokens.expected)} / {_tok(r.output_tokens.high)}",
            _usd(r.usd.low),
            _usd(r.usd.expected),
            _usd(r.usd.high),
            r.expected_from,
        )
    table.add_section()
    table.add_row(
        "total",
        "",
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
    for lane in estimate.lanes:
        console.print(
            f"  {lane.provider}: {lane.calls:,.0f} calls, {_tok(lane.tokens)} tokens expected; rpm "
            f"{lane.rpm or '?'}, tpm {lane.tpm or '?'}: at least {_duration(lane.min_wall_s)}"
        )
    for note in estimate.notes:
        console.print(f"  note: {note}")
