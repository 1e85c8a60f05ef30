"""Fitting a table or a line to the terminal's width by leaving parts out, never by wrapping.

Each column (or segment of a line) has a priority: 0 is always shown, higher numbers give way
first (the rightmost of equal priority first). What is left is drawn whole, one line per row.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text


def columns_that_fit(
    widths: Sequence[int], priorities: Sequence[int], available: int, *, per_column: int, fixed: int = 0
) -> list[int]:
    """The indices of the columns to show, in order, so that the table is at most ``available`` wide.

    Args:
        widths: each column's content width (its widest cell or header).
        priorities: each column's priority (0: never left out).
        available: the width to fit in.
        per_column: what each shown column adds besides its content (padding, a border).
        fixed: what the table adds whatever its columns (outer borders).
    """
    shown = list(range(len(widths)))

    def total() -> int:
        return fixed + sum(widths[i] + per_column for i in shown)

    while total() > available:
        droppable = [i for i in shown if priorities[i] > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (priorities[i], i)))
    return shown


def text_width(text: str) -> int:
    """Cells a plain string takes on a terminal."""
    return cell_len(text)


def fit_line(segments: Sequence[tuple[Text, int]], width: int, separator: str = " · ") -> Text:
    """One line of ``segments`` joined by ``separator``, leaving out the lowest-priority ones that do
    not fit ``width``; what still does not fit ends in an ellipsis. Never more than one line."""
    widths = [segment.cell_len for segment, _ in segments]
    shown = columns_that_fit(widths, [p for _, p in segments], width, per_column=len(separator), fixed=-len(separator))
    line = Text(separator, style="dim").join(segments[i][0] for i in shown)
    line.no_wrap = True
    line.overflow = "ellipsis"
    line.truncate(width, overflow="ellipsis")
    return line
