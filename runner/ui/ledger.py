"""The ledger summary as a terminal table: calls, tokens and dollars by call kind, and retries."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from runner.ledger.audit import KINDS, SummaryRow
from runner.ui import format as fmt


def print_summary(rows: list[SummaryRow], console: Console, title: str = "") -> None:
    table = Table(title=f"Spend in {title}", title_justify="left")
    columns = ("model", "dataset", "problem", "jobs", *(f"{k} calls / tok / $" for k in KINDS), "retries", "total $")
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "dataset", "problem") else "right")
    for row in rows:
        if row.model == "total":
            table.add_section()
        cells = [
            f"{row.calls[k]} / {fmt.count(row.tokens[k])} / {fmt.usd(row.usd[k])}" if row.attempts[k] else "–"
            for k in KINDS
        ]
        retries = sum(row.attempts.values()) - sum(row.calls.values())
        table.add_row(row.model, row.dataset, row.problem, str(row.jobs), *cells, str(retries), fmt.usd(row.total_usd))
    console.print(table)
    console.print("calls: requests a job decided to make; retries: attempts after the first of their call")
