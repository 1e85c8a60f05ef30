"""The ledger summary as a terminal table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from runner.ledger.audit import KINDS, SummaryRow
from runner.ui import format as fmt


def print_summary(rows: list[SummaryRow], console: Console, title: str = "") -> None:
    table = Table(title=f"Spend in {title}", title_justify="left")
    for col in ("model", "dataset", "problem", "jobs", *(f"{k} calls / tok / $" for k in KINDS), "total $"):
        table.add_column(col, justify="left" if col in ("model", "dataset", "problem") else "right")
    for row in rows:
        if row.model == "total":
            table.add_section()
        cells = [
            f"{row.calls[k]} / {fmt.count(row.tokens[k])} / {fmt.usd(row.usd[k])}" if row.calls[k] else "–"
            for k in KINDS
        ]
        table.add_row(row.model, row.dataset, row.problem, str(row.jobs), *cells, fmt.usd(row.total_usd))
    console.print(table)
