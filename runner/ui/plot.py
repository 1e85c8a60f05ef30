"""Figures of a report: per dataset, Q(b) with 95% bootstrap bands, running-best curves, quality vs dollars.

A dataset's figure has three panels side by side, every cell of the dataset (model x method, and
the run's name when several runs are drawn) in each:

1. quality x100 against the budget (log scale), the 95% bootstrap band over problems shaded;
2. the running best Q*(b), the curve the Anytime Index integrates, with its band;
3. quality x100 against the dollars one trace costs when answered at that budget
   (`runner.analysis.costs`), log scale: the budget that buys the most quality per dollar.

`plot_datasets` writes one figure per dataset at publication size (7 x 2.4 inches, 8 pt type, PNG
at 300 dpi, or vector SVG / PDF); `plot_report` draws the report's ``anytime.png``: the same
panels, one row per dataset. matplotlib is the optional extra ``plot``; without it both raise
`PlotUnavailable` whose message says how to install it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runner.ui import format as fmt

if TYPE_CHECKING:
    from runner.analysis.report import Cell, Report, RunReport

MISSING_HINT = "matplotlib is not installed: pip install 'anytime-runner[plot]'"
PlotFormat = Literal["png", "svg", "pdf"]
PLOT_FORMATS: tuple[PlotFormat, ...] = ("png", "svg", "pdf")
WIDTH_IN, ROW_HEIGHT_IN = 7.0, 2.4  # a two-column figure in most journals
DPI = 300
_STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "svg.fonttype": "none",  # text stays text in SVG
    "pdf.fonttype": 42,  # TrueType in PDF: editable, as journals ask
}


class PlotUnavailable(ImportError):
    """matplotlib is missing (install the ``plot`` extra)."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(MISSING_HINT) from None
    return plt


def plot_datasets(report: Report, folder: Path, fmt_: PlotFormat = "png") -> list[Path]:
    """One figure per dataset, ``plot-<dataset>.<format>`` in ``folder``; returns the paths.

    Raises:
        PlotUnavailable: matplotlib is not installed.
    """
    plt = _pyplot()
    written = []
    for dataset in _datasets(report):
        with plt.rc_context(_STYLE):
            fig, axes = plt.subplots(1, 3, figsize=(WIDTH_IN, ROW_HEIGHT_IN + 0.5), squeeze=False)
            _draw(axes[0], report, dataset)
            _legend(fig, axes[0])
            path = Path(folder) / f"plot-{_slug(dataset)}.{fmt_}"
            fig.savefig(path, dpi=DPI, bbox_inches="tight")
            plt.close(fig)
        written.append(path)
    return written


def plot_report(report: Report, path: Path) -> Path:
    """The report's image: the three panels for every dataset, one row each.

    Raises:
        PlotUnavailable: matplotlib is not installed.
    """
    plt = _pyplot()
    datasets = _datasets(report) or ["(no data)"]
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            len(datasets), 3, figsize=(WIDTH_IN, ROW_HEIGHT_IN * len(datasets) + 0.5), squeeze=False
        )
        for row, dataset in zip(axes, datasets, strict=True):
            _draw(row, report, dataset)
        _legend(fig, axes[-1])
        fig.savefig(path, dpi=150, bbox_inches="tight")
        plt.close(fig)
    return Path(path)


def _datasets(report: Report) -> list[str]:
    return sorted({cell.dataset for run in report.runs for cell in run.cells})


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "dataset"


def _draw(axes: Any, report: Report, dataset: str) -> None:
    quality, best, dollars = axes
    cells = [(run, cell) for run in report.runs for cell in run.cells if cell.dataset == dataset]
    for run, cell in cells:
        label = _label(report, run, cell)
        budgets = list(cell.summary.budgets)
        q = [100 * v for v in cell.summary.quality]
        (line,) = quality.plot(budgets, q, marker="o", label=label)
        color = line.get_color()
        if cell.bands is not None:
            _band(quality, budgets, cell.bands.quality, color)
            _band(best, budgets, cell.bands.running_best, color)
            best.plot(budgets, [100 * i.value for i in cell.bands.running_best], marker="o", color=color)
        if cell.usd_at_budget and any(cell.usd_at_budget):
            dollars.plot(cell.usd_at_budget, q, marker="o", color=color)
    ticks = sorted({b for _, c in cells for b in c.summary.budgets})
    for ax, title in ((quality, f"{dataset}: Q(b), 95% band"), (best, "running best Q*(b)")):
        ax.set_xscale("log", base=2)
        if ticks:
            ax.set_xticks(ticks, [fmt.budget(b) for b in ticks])
            ax.minorticks_off()
        ax.set_xlabel("reasoning budget b (tokens)")
        ax.set_title(title)
    dollars.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    dollars.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    dollars.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: fmt.usd(x)))
    dollars.xaxis.set_minor_formatter(NullFormatter())
    dollars.set_xlabel("$ per trace answered at b")
    dollars.set_title("quality vs dollars")
    for ax in axes:
        ax.set_ylim(0, 100)
        ax.grid(True, which="major", alpha=0.3)
    quality.set_ylabel("quality (x100)")


def _band(ax: Any, budgets: list[int], intervals: Any, color: str) -> None:
    if all(i.lo is not None and i.hi is not None for i in intervals):
        ax.fill_between(
            budgets,
            [100 * i.lo for i in intervals],
            [100 * i.hi for i in intervals],
            color=color,
            alpha=0.15,
            linewidth=0,
        )


def _label(report: Report, run: RunReport, cell: Cell) -> str:
    prefix = f"{run.name}: " if len(report.runs) > 1 else ""
    return (
        f"{prefix}{cell.model} · {cell.method} (AI {fmt.points(cell.summary.anytime_index.value)}, "
        f"{fmt.usd(cell.usd_total)})"
    )


def _legend(fig: Any, axes: Any) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=min(3, len(labels)), frameon=False, bbox_to_anchor=(0.5, -0.02)
        )
        fig.tight_layout(rect=(0, 0.05 + 0.03 * ((len(labels) - 1) // 3), 1, 1))
    else:
        fig.tight_layout()


__all__ = ["MISSING_HINT", "PLOT_FORMATS", "PlotFormat", "PlotUnavailable", "plot_datasets", "plot_report"]
