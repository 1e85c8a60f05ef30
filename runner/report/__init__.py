"""`anytime report RUN [RUN ...]`: quality per budget, Anytime Index and dollars, from the ledger alone.

The pipeline calls `build_report`, `write_report` and `print_report` at the end of a run. Outputs:
rich tables, and ``report.json``, ``report.md``, ``anytime.png`` in the run folder; the plot needs
the optional extra ``plot`` (matplotlib) and is skipped with a hint when it is missing.

- `runner.report.build`: what counts (snapshots of finished executions) and what was paid (every attempt);
- `runner.report.render`: the tables, for the terminal and as Markdown.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import msgspec

from runner.report.build import Cell, Paired, Report, RunReport, build_report
from runner.report.render import render_markdown

__all__ = [
    "Cell",
    "Paired",
    "Report",
    "RunReport",
    "add_arguments",
    "build_report",
    "main",
    "print_report",
    "render_markdown",
    "write_csv",
    "write_report",
]


def print_report(report: Report, console: Any) -> None:
    """Print the report's tables on a rich Console."""
    console.print(report)


def write_report(report: Report, run_dir: str | Path) -> list[Path]:
    """Write report.json, report.md, report.csv and (with matplotlib) anytime.png into ``run_dir``.

    Returns the paths written. A missing matplotlib is not an error: the PNG is skipped and a note
    saying how to install it is added to ``report.notes`` (printed with the tables).
    """
    from runner.plot import PlotUnavailable, plot_report

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
    "quality",
    "anytime_index",
    "mode",
    "problems",
    "usd_total",
    "usd_synthesis",
    "fidelity",
)


def write_csv(report: Report, path: Path) -> None:
    """One row per (run, model, dataset, method, budget); budget "full" is the untruncated trace."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(CSV_COLUMNS)
        for run in report.runs:
            for cell in run.cells:
                points: list[tuple[str, float | None]] = [
                    (str(b), q) for b, q in zip(cell.summary.budgets, cell.summary.quality, strict=True)
                ]
                points.append(("full", cell.summary.full.value if cell.summary.full else None))
                for budget, quality in points:
                    out.writerow(
                        [
                            run.name,
                            cell.model,
                            cell.dataset,
                            cell.method,
                            budget,
                            "" if quality is None else f"{quality:.6f}",
                            f"{cell.summary.anytime_index.value:.4f}",
                            run.mode,
                            cell.summary.problems,
                            f"{cell.usd_total:.6f}",
                            f"{cell.usd_synthesis:.6f}",
                            cell.fidelity,
                        ]
                    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) holding ledger.jsonl")
    parser.add_argument("--compare", action="store_true", help="set the runs side by side")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    report = build_report(args.runs, compare=args.compare)
    written: list[Path] = []
    for run in report.runs:  # each run folder gets its own report files
        single = Report(runs=[run])
        written += write_report(single, run.run_dir)
        report.notes += [n for n in single.notes if n not in report.notes]
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
        return 0
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no width to fit, keep rows whole
        console = Console(width=200)
    print_report(report, console)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0
