"""``anytime.png``: quality vs budget, one curve per model x method, budgets on a log axis.

matplotlib is the optional extra ``plot``; without it `plot_report` raises `PlotUnavailable`
whose message says how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runner.ui import format as fmt

if TYPE_CHECKING:
    from runner.analysis.report import Report

MISSING_HINT = "matplotlib is not installed: pip install 'anytime-runner[plot]'"


class PlotUnavailable(ImportError):
    """matplotlib is missing (install the ``plot`` extra)."""


def plot_report(report: Report, path: Path) -> Path:
    """Draw one panel per dataset (each has its own budget grid and metric) and save the PNG.

    The legend names each curve's model and method with its Anytime Index and dollars spent.

    Raises:
        PlotUnavailable: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(MISSING_HINT) from None

    cells = [(run, cell) for run in report.runs for cell in run.cells]
    datasets = sorted({cell.dataset for _, cell in cells}) or ["(no data)"]
    columns = min(3, len(datasets))
    rows = -(-len(datasets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.8 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(datasets) :]:
        ax.set_visible(False)
    for ax, dataset in zip(flat, datasets, strict=False):
        for run, cell in cells:
            if cell.dataset != dataset:
                continue
            prefix = f"{run.name}: " if len(report.runs) > 1 else ""
            label = (
                f"{prefix}{cell.model} · {cell.method} (AI {fmt.points(cell.summary.anytime_index.value)}, "
                f"{fmt.usd(cell.usd_total)})"
            )
            ax.plot(cell.summary.budgets, [100 * q for q in cell.summary.quality], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ticks = sorted({b for _, c in cells if c.dataset == dataset for b in c.summary.budgets})
        if ticks:
            ax.set_xticks(ticks, [str(b) for b in ticks])
            ax.minorticks_off()
        ax.set_xlabel("reasoning budget (tokens, log scale)")
        ax.set_ylabel("quality (x100)")
        ax.set_ylim(0, 100)
        ax.set_title(dataset)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
