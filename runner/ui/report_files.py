"""A report's files in its run folder: report.json, report.md, report.csv and the plot.

The plot needs the optional extra ``plot`` (matplotlib) and is skipped with a hint when it is
missing.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from runner.analysis.report import Report
from runner.ui.report import render_markdown, rich_report

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_report", "write_csv", "write_report"]


def print_report(report: Report, console: Console) -> None:
    """Print the report's tables on a rich Console."""
    console.print(rich_report(report))


def write_report(report: Report, run_dir: str | Path) -> list[Path]:
    """Write report.json, report.md, report.csv and (with matplotlib) anytime.png into ``run_dir``.

    Returns the paths written. A missing matplotlib is not an error: the PNG is skipped and a note
    saying how to install it is added to ``report.notes`` (printed with the tables).
    """
    from runner.ui.plot import PlotUnavailable, plot_report

    folder = Path(run_dir)
    written = [folder / "report.json", folder / "report.md"]
    written[0].write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    written[1].write_text(render_markdown(report), encoding="utf-8")
    written.append(folder / "report.csv")
    write_csv(report, written[-1])
    try:
        written.append(plot_report(report, folder / "anytime.png"))
    except PlotUnavailable as exc:
        note = f"anytime.png skipped: {exc}"
        if note not in report.notes:
            report.notes.append(note)
    return written


CSV_COLUMNS = (
    "run",
    "model",
    "dataset",
    "method",
    "budget",
    "full_trace",
    "quality",
    "anytime_index",
    "mode",
    "problems",
    "usd_total",
    "usd_synthesis",
    "fidelity",
)


def write_csv(report: Report, path: Path) -> None:
    """One row per (run, model, dataset, method, budget), typed: numbers are written as numbers.

    ``budget`` is the token budget (an integer); the row of the untruncated trace has no budget
    and ``full_trace`` true. A quality that does not exist is left empty (not zero), so pandas,
    DuckDB and spreadsheets read ``budget`` and ``quality`` as numeric columns.
    """
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(CSV_COLUMNS)
        for run in report.runs:
            for cell in run.cells:
                points: list[tuple[int | None, float | None]] = list(
                    zip(cell.summary.budgets, cell.summary.quality, strict=True)
                )
                points.append((None, cell.summary.full.value if cell.summary.full else None))
                for budget, quality in points:
                    out.writerow(
                        [
                            run.name,
                            cell.model,
                            cell.dataset,
                            cell.method,
                            "" if budget is None else budget,
                            "true" if budget is None else "false",
                            "" if quality is None else round(quality, 6),
                            round(cell.summary.anytime_index.value, 4),
                            run.mode,
                            cell.summary.problems,
                            round(cell.usd_total, 6),
                            round(cell.usd_synthesis, 6),
                            cell.fidelity,
                        ]
                    )
