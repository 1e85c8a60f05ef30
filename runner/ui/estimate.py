"""The estimate on a terminal: the one-line summary `anytime run` prints, and the full table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from runner.ledger.estimate import Estimate, Span
from runner.ui import format as fmt


def _least_time(s: float | None) -> str:
    if s is None:
        return "unknown (no limits stated; they are learned from headers at run time)"
    if s <= 0:
        return "0s (a run this size fits in the limits' first minute)"
    return fmt.duration(s)


def print_estimate_summary(estimate: Estimate, console: Console) -> None:
    """One line for `anytime run`: the dollar range, calls and the least wall time."""
    console.print(estimate_summary(estimate))


def estimate_summary(estimate: Estimate) -> str:
    """The line `print_estimate_summary` prints (rich markup)."""
    done = (
        f" for what is left ({estimate.jobs_done:,} jobs already done, {fmt.usd(estimate.usd_spent)} spent)"
        if estimate.jobs_done
        else ""
    )
    if estimate.jobs_done and not estimate.calls_high:
        return (
            f"[bold]Estimate[/]: nothing left to run ({estimate.jobs_done:,} jobs done, "
            f"{fmt.usd(estimate.usd_spent)} spent): a rerun only rebuilds the report"
        )
    interval = (
        f"90% interval {fmt.usd(estimate.usd_interval[0])}–{fmt.usd(estimate.usd_interval[1])}, "
        if estimate.usd_interval is not None
        else ""
    )
    mode = " in batch mode" if estimate.mode == "batch" else ""
    return (
        f"[bold]Estimate[/]{done}: up to {estimate.calls_high:,} calls{mode}; "
        f"expected {fmt.usd(estimate.usd_expected)} "
        f"({interval}low {fmt.usd(estimate.usd_low)}, high {fmt.usd(estimate.usd_high)}); "
        + _time_clause(estimate)
        + _other_mode(estimate)
    )


def _time_clause(estimate: Estimate) -> str:
    if estimate.mode == "batch":
        return f"{estimate.batch_waves} batches one after another, each up to 24 h (most end within an hour)"
    if estimate.min_wall_s is not None:
        return f"at least {_least_time(estimate.min_wall_s)} under the rate limits"
    return "no rate limits stated (they are learned from headers at run time)"


def _other_mode(estimate: Estimate) -> str:
    """The other mode's expected dollars, for the summary line."""
    if estimate.mode == "batch" and estimate.usd_stream is not None:
        return f"; streamed it would be {fmt.usd(estimate.usd_stream.expected)}"
    if estimate.mode == "stream" and estimate.usd_batch is not None:
        return f"; with --batch {fmt.usd(estimate.usd_batch.expected)}, up to {estimate.batch_waves} x 24 h"
    return ""


def _other_expected(row_or_total: Span | None) -> str:
    return fmt.usd(row_or_total.expected) if row_or_total is not None else "—"


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
        "input tok exp (cached) / high",
        "output tok low / exp / high",
        "$ low",
        "$ expected",
        "$ high",
        "$ streamed (exp)" if estimate.mode == "batch" else "$ batch (exp)",
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
            f"{fmt.count(r.input_tokens.expected)} ({fmt.count(r.cached_tokens)}) / {fmt.count(r.input_tokens.high)}",
            " / ".join(fmt.count(n) for n in (r.output_tokens.low, r.output_tokens.expected, r.output_tokens.high)),
            fmt.usd(r.usd.low),
            fmt.usd(r.usd.expected),
            fmt.usd(r.usd.high),
            _other_expected(r.usd_stream if estimate.mode == "batch" else r.usd_batch),
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
        fmt.usd(estimate.usd_low),
        fmt.usd(estimate.usd_expected),
        fmt.usd(estimate.usd_high),
        _other_expected(estimate.usd_stream if estimate.mode == "batch" else estimate.usd_batch),
        "",
    )
    console.print(table)
    _print_footer(estimate, console)


def _print_footer(estimate: Estimate, console: Console) -> None:
    """Below the table: the interval, what caching saves, the lanes' least time, the assumptions."""
    if estimate.usd_interval is not None:
        low, high = estimate.usd_interval
        console.print(f"  expected {fmt.usd(estimate.usd_expected)}, 90% interval {fmt.usd(low)}–{fmt.usd(high)}")
    if estimate.usd_uncached > estimate.usd_expected:
        console.print(
            f"  prompt caching: expected {fmt.usd(estimate.usd_expected)} instead of "
            f"{fmt.usd(estimate.usd_uncached)} without it"
        )
    _print_modes(estimate, console)
    _print_lanes(estimate, console)
    for note in estimate.notes:
        console.print(f"  note: {note}")


def _print_modes(estimate: Estimate, console: Console) -> None:
    """Streamed against batch mode: dollars side by side, and how long batches may take."""
    stream, batch = estimate.usd_stream, estimate.usd_batch
    if stream is None or not estimate.rows:
        return
    console.print(
        f"  streamed: expected {fmt.usd(stream.expected)} (low {fmt.usd(stream.low)}, high {fmt.usd(stream.high)})"
    )
    if batch is None:
        console.print("  batch mode: not available (a provider here has no batch interface)")
        return
    saving = 1 - batch.expected / stream.expected if stream.expected else 0.0
    console.print(
        f"  batch mode (--batch): expected {fmt.usd(batch.expected)} (low {fmt.usd(batch.low)}, high "
        f"{fmt.usd(batch.high)}), {saving:.0%} less; {estimate.batch_waves} batches one after another, "
        "each up to 24 h (providers' completion window; most end within an hour), no rate limits"
    )


def _print_lanes(estimate: Estimate, console: Console) -> None:
    """Per provider: the calls expected (and their attempts, when history shows retries) and the
    least wall time its limits allow (at the least use a run can make)."""
    for lane in estimate.lanes:
        retries = lane.attempts - lane.calls
        requests = f" ({lane.attempts:,.0f} attempts with retries)" if retries >= 0.5 else ""
        console.print(
            f"  {lane.provider}: {lane.calls:,.0f} calls{requests}, {fmt.count(lane.tokens)} tokens expected; rpm "
            f"{lane.rpm or '?'}, tpm {lane.tpm or '?'}: at least {_least_time(lane.min_wall_s)}"
        )
