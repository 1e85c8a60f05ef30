"""Rendering a report: rich tables for the terminal and the same tables as Markdown.

One table set per dataset, since each dataset has its own budget grid and metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runner.analysis.anytime import Interval
from runner.analysis.compare import RunComparison
from runner.analysis.report import Cell, Report, ReuseSummary, RunReport
from runner.ui import format as fmt

if TYPE_CHECKING:  # the types only: rich itself loads where a table is drawn
    from rich.console import Group, RenderableType

    from runner.ui.fit import FittedTable


def _ci(interval: Interval, scale: float = 1.0) -> str:
    if interval.lo is None or interval.hi is None:
        return f"{scale * interval.value:.1f}"
    return f"{scale * interval.value:.1f} [{scale * interval.lo:.1f}, {scale * interval.hi:.1f}]"


def _datasets(run: RunReport) -> list[str]:
    return sorted({cell.dataset for cell in run.cells})


def quality_rows(run: RunReport, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Quality x100 at each budget, on the full trace, and the Anytime Index, for one dataset."""
    cells = [c for c in run.cells if c.dataset == dataset]
    budgets = sorted({b for cell in cells for b in cell.summary.budgets})
    with_exact = any(c.exact_final is not None for c in cells)
    header = ["model", "method", "n", *map(fmt.budget, budgets), "full", "AI", "AI 95% CI"]
    header += ["exact (last/full)"] if with_exact else []
    rows = []
    for cell in cells:
        at = dict(zip(cell.summary.budgets, cell.summary.quality, strict=True))
        ai = cell.summary.anytime_index
        row = [
            cell.model,
            cell.method,
            str(cell.summary.problems),
            *(fmt.quality(at.get(b)) for b in budgets),
            fmt.quality(cell.summary.full.value if cell.summary.full else None),
            fmt.points(ai.value),
            fmt.NONE if ai.lo is None or ai.hi is None else f"{fmt.points(ai.lo)}–{fmt.points(ai.hi)}",
        ]
        if with_exact:
            row.append(
                "—" if cell.exact_final is None else f"{fmt.quality(cell.exact_final)}/{fmt.quality(cell.exact_full)}"
            )
        rows.append(row)
    return header, rows


def cost_rows(run: RunReport, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Dollars, tokens, calls and measurement labels for one dataset."""
    header = [
        "model",
        "method",
        "$ total",
        "$/problem",
        "synthesis $ (/problem)",
        "$/AI pt",
        "tokens in/out",
        "calls (retries)",
        "fidelity",
        "counted/billed",
    ]
    rows = []
    for cell in (c for c in run.cells if c.dataset == dataset):
        rows.append(
            [
                cell.model,
                cell.method,
                fmt.usd(cell.usd_total),
                fmt.usd(cell.usd_per_problem),
                "—"
                if not cell.usd_synthesis
                else f"{fmt.usd(cell.usd_synthesis)} ({fmt.usd(cell.synthesis_per_problem)})",
                fmt.usd(cell.usd_per_ai_point),
                f"{fmt.count(cell.input_tokens)}/{fmt.count(cell.output_tokens)}",
                f"{cell.calls} ({cell.retries})",
                cell.fidelity + ("*" if cell.approximate_tokens else ""),
                "—" if cell.counted_to_billed is None else f"{cell.counted_to_billed:.3f}",
            ]
        )
    return header, rows


def difference_rows(run: RunReport, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Paired differences against the baseline, in points, with 95% bootstrap intervals."""
    header = ["model", "method − baseline", "n", "Δ AI", "Δ AI 95% CI", "Δ final", "Δ final 95% CI"]
    rows = []
    for p in (p for p in run.differences if p.dataset == dataset):
        ai, final = p.difference.anytime_index, p.difference.final
        rows.append(
            [
                p.model,
                f"{p.method} − {p.baseline}",
                str(p.difference.problems),
                f"{ai.value:+.1f}",
                "—" if ai.lo is None else f"{ai.lo:+.1f} to {ai.hi:+.1f}",
                f"{100 * final.value:+.1f}",
                "—" if final.lo is None or final.hi is None else f"{100 * final.lo:+.1f} to {100 * final.hi:+.1f}",
            ]
        )
    return header, rows


def overall_rows(run: RunReport) -> tuple[list[str], list[list[str]]]:
    """Per model and method, the unweighted mean over datasets (the paper's "Overall", paper.md §2.2)."""
    header = ["model", "method", "datasets", "final", "full", "AI", "$ total"]
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in run.cells:
        groups.setdefault((cell.model, cell.method), []).append(cell)
    rows = []
    for (model, method), cells in sorted(groups.items()):
        fulls = [c.summary.full.value for c in cells if c.summary.full is not None]
        rows.append(
            [
                model,
                method,
                str(len(cells)),
                fmt.quality(sum(c.summary.final.value for c in cells) / len(cells)),
                fmt.quality(sum(fulls) / len(fulls) if len(fulls) == len(cells) else None),
                fmt.points(sum(c.summary.anytime_index.value for c in cells) / len(cells)),
                fmt.usd(sum(c.usd_total for c in cells)),
            ]
        )
    return header, rows


# which columns give way first when a terminal is narrow (0: never); report.md keeps every one
_PRIORITY = {
    "$/problem": 1,
    "fidelity": 1,
    "final": 1,
    "Δ AI 95% CI": 1,
    "full": 2,
    "$/AI pt": 2,
    "Δ final": 2,
    "AI 95% CI": 3,
    "calls (retries)": 3,
    "tokens in/out": 3,
    "Δ final 95% CI": 3,
    "n": 4,
    "datasets": 4,
    "counted/billed": 5,
    "exact (last/full)": 5,
    "synthesis $ (/problem)": 6,
}


def _priorities(header: list[str]) -> list[int]:
    """Each column's priority: names first, the Anytime Index and dollars always; of the budgets,
    the first and last (the ends of the curve) before the ones between."""
    budgets = [i for i, name in enumerate(header) if name[:1].isdigit()]
    ends = {budgets[0], budgets[-1]} if budgets else set()
    return [(1 if i in ends else 2) if i in budgets else _PRIORITY.get(name, 0) for i, name in enumerate(header)]


def report_table(title: str, header: list[str], rows: list[list[str]]) -> FittedTable:
    """A report table that fits the terminal by leaving out columns of low priority (never by
    wrapping cells); report.md keeps every column."""
    from runner.ui.fit import FittedTable

    left = 3 if header[:3] == ["model", "dataset", "method"] else 2
    return FittedTable(title, header, rows, _priorities(header), left=left, where_all="report.md")


def _run_tables(run: RunReport) -> Group:
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = []
    for dataset in _datasets(run):
        parts.append(
            report_table(
                f"{run.name} · {dataset}: quality x100 per budget; AI = Anytime Index ({run.mode})",
                *quality_rows(run, dataset),
            )
        )
        parts.append(report_table(f"{run.name} · {dataset}: cost", *cost_rows(run, dataset)))
        if any(p.dataset == dataset for p in run.differences):
            parts.append(
                report_table(
                    f"{run.name} · {dataset}: paired differences (points)",
                    *difference_rows(run, dataset),
                )
            )
    if len(_datasets(run)) > 1:
        parts.append(report_table(f"{run.name}: overall (unweighted mean over datasets, x100)", *overall_rows(run)))
    parts.append(Text(_footer(run), style="dim"))
    return Group(*parts)


def _footer(run: RunReport) -> str:
    text = (
        f"{run.jobs_done} jobs done; spend {fmt.usd(run.usd_total)} in all"
        f" (of which {fmt.usd(run.usd_interrupted)} lost to interruptions,{_failed(run)}"
        f" {fmt.usd(run.usd_unattributed)} on unfinished jobs). Anytime Index mode: {run.mode}; "
        "intervals: 95% bootstrap over problems."
    )
    if any(c.approximate_tokens for c in run.cells):
        text += " * approximate tokens: counted with an encoding that is not the model's own tokenizer."
    reuse = reuse_line(run.reuse)
    return f"{text}\n{reuse}" if reuse else text


def reuse_line(reuse: ReuseSummary) -> str:
    """ "reused N traces, $X not spent", with what else reuse did; empty when it did nothing."""
    if not (reuse.traces or reuse.continued or reuse.requested or reuse.answers):
        return ""
    text = f"reused {reuse.traces} trace{'s' * (reuse.traces != 1)}"
    if reuse.answers:
        text += f" and {reuse.answers} answer{'s' * (reuse.answers != 1)}"
    if reuse.continued:
        many = reuse.continued != 1
        text += f", continued {reuse.continued} stored trace{'s' * many} past {'their' if many else 'its'} end"
    text += f", {fmt.usd(reuse.usd_not_spent)} not spent"
    if reuse.requested:
        text += f"; {reuse.requested} stored trace{'s' * (reuse.requested != 1)} too short to serve, requested again"
    return f"{text} (from {', '.join(Path(source).name for source in reuse.sources)})."


def _failed(run: RunReport) -> str:
    """The spend of failed executions, when there was any (retried jobs that a rerun completed)."""
    return f" {fmt.usd(run.usd_failed)} on failed attempts at jobs completed later," if run.usd_failed else ""


def _compare_table(runs: list[RunReport]) -> FittedTable:
    header, rows = compare_rows(runs)
    return report_table("runs side by side: Anytime Index / final quality (x100) / $ total", header, rows)


def compare_rows(runs: list[RunReport]) -> tuple[list[str], list[list[str]]]:
    keys = sorted({(c.model, c.dataset, c.method) for run in runs for c in run.cells})
    header = ["model", "dataset", "method", *(run.name or run.run_id for run in runs)]
    rows = []
    for key in keys:
        row = list(key)
        for run in runs:
            cell = next((c for c in run.cells if (c.model, c.dataset, c.method) == key), None)
            row.append(
                "—"
                if cell is None
                else f"{fmt.points(cell.summary.anytime_index.value)} / {fmt.quality(cell.summary.final.value)} / "
                f"{fmt.usd(cell.usd_total)}"
            )
        rows.append(row)
    return header, rows


def _signed(interval: Interval, scale: float) -> str:
    """``+12.5 (+3.1 to +21.9)``: a difference with its 95% interval."""
    text = f"{scale * interval.value:+.1f}"
    if interval.lo is None or interval.hi is None:
        return text
    return f"{text} ({scale * interval.lo:+.1f} to {scale * interval.hi:+.1f})"


def comparison_rows(comparison: RunComparison, dataset: str) -> tuple[list[str], list[list[str]]]:
    """B − A per cell of one dataset: Q at each budget (points x100) and the Anytime Index, paired intervals."""
    cells = [c for c in comparison.cells if c.dataset == dataset]
    budgets = sorted({b for cell in cells for b in cell.budgets})
    header = ["model", "method", "n", *(f"Δ {fmt.budget(b)}" for b in budgets), "Δ AI", "AI A → B"]
    rows = []
    for cell in cells:
        at = {d.budget: d.difference for d in cell.quality}
        rows.append(
            [
                cell.model,
                cell.method,
                str(cell.problems),
                *(fmt.NONE if b not in at else _signed(at[b], 100.0) for b in budgets),
                _signed(cell.anytime_index, 1.0),
                f"{fmt.points(cell.anytime_index_a)} → {fmt.points(cell.anytime_index_b)}",
            ]
        )
    return header, rows


def comparison_notes(comparison: RunComparison) -> list[str]:
    """What a comparison kept and left out, in words."""
    notes = [
        f"{comparison.b} − {comparison.a}: differences x100 with paired 95% bootstrap intervals over problems "
        f"(Anytime Index mode {comparison.mode})."
    ]
    if comparison.intersect:
        notes += [
            f"{d.dataset}: kept the {d.kept} problems both runs have ({d.in_a} in {comparison.a}, "
            f"{d.in_b} in {comparison.b})."
            for d in comparison.datasets
        ]
    if comparison.only_in_a or comparison.only_in_b:
        notes.append(
            "not compared (in one run only): "
            + ", ".join(
                [
                    *(f"{c} ({comparison.a})" for c in comparison.only_in_a),
                    *(f"{c} ({comparison.b})" for c in comparison.only_in_b),
                ]
            )
        )
    return notes


def _comparison_tables(comparison: RunComparison) -> Group:
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = []
    for dataset in sorted({c.dataset for c in comparison.cells}):
        title = f"{comparison.b} − {comparison.a} · {dataset}: paired differences (x100)"
        parts.append(report_table(title, *comparison_rows(comparison, dataset)))
    parts += [Text(note, style="dim") for note in comparison_notes(comparison)]
    return Group(*parts)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The report as Markdown: the same tables as the terminal."""
    out: list[str] = []
    for run in report.runs:
        out += [f"# Report: {run.name} ({run.run_id})", ""]
        for dataset in _datasets(run):
            out += [
                f"## {dataset}",
                "",
                f"Quality x100 per budget; AI = Anytime Index x100 ({run.mode}):",
                "",
                _markdown_table(*quality_rows(run, dataset)),
                "",
                "Cost:",
                "",
                _markdown_table(*cost_rows(run, dataset)),
                "",
            ]
            if any(p.dataset == dataset for p in run.differences):
                out += [
                    "Paired differences (points):",
                    "",
                    _markdown_table(*difference_rows(run, dataset)),
                    "",
                ]
        if len(_datasets(run)) > 1:
            out += [
                "## Overall (unweighted mean over datasets, x100)",
                "",
                _markdown_table(*overall_rows(run)),
                "",
            ]
        out += [_footer(run), ""]
    if report.compare and len(report.runs) > 1:
        out += ["# Runs side by side", "", _markdown_table(*compare_rows(report.runs)), ""]
    for comparison in report.comparisons:
        out += [f"# {comparison.b} − {comparison.a}", ""]
        for dataset in sorted({c.dataset for c in comparison.cells}):
            out += [f"## {dataset}", "", _markdown_table(*comparison_rows(comparison, dataset)), ""]
        out += [*comparison_notes(comparison), ""]
    return "\n".join(out)


def rich_report(report: Report) -> Group:
    """Every run's tables, and the side-by-side table when ``report.compare`` is set."""
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = [_run_tables(run) for run in report.runs]
    if report.compare and len(report.runs) > 1:
        parts.append(_compare_table(report.runs))
    parts += [_comparison_tables(comparison) for comparison in report.comparisons]
    parts += [Text(note, style="yellow") for note in report.notes]
    return Group(*parts)
