"""Fitting a table or a line to the terminal's width by leaving parts out, never by wrapping.

Each column (or segment of a line) has a priority: 0 is always shown, higher numbers give way
first (the rightmost of equal priority first). What is left is drawn whole, one line per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.table import Table


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


def text_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Text]],
    priorities: Sequence[int],
    left: Sequence[bool],
    width: int,
    *,
    first_max: int,
) -> Text:
    """Rows of cells under a header, two spaces apart, with the columns that fit ``width`` (by
    ``priorities``; the first column cut to ``first_max``), each left- or right-justified by
    ``left``. Laid out by hand, not as a rich Table: the dashboard redraws it four times a second."""
    widths = [max([text_width(h), *(row[i].cell_len for row in rows)]) for i, h in enumerate(headers)]
    widths[0] = min(widths[0], first_max)
    shown = columns_that_fit(widths, priorities, width, per_column=2, fixed=-2)
    header = [Text(headers[i], style="bold dim") for i in shown]
    lines = [_text_row(header, shown, widths, left)]
    lines += [_text_row([row[i] for i in shown], shown, widths, left) for row in rows]
    table = Text("\n").join(lines)
    table.no_wrap = True
    return table


def _text_row(cells: list[Text], shown: list[int], widths: list[int], left: Sequence[bool]) -> Text:
    line = Text()
    for n, (i, cell) in enumerate(zip(shown, cells, strict=True)):
        if n:
            line.append("  ")
        cell = cell.copy()
        cell.truncate(widths[i], overflow="ellipsis")
        pad = " " * (widths[i] - cell.cell_len)
        if left[i]:
            line.append_text(cell)
            line.append(pad)
        else:
            line.append(pad)
            line.append_text(cell)
    return line


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


class FittedTable:
    """A table of strings drawn at whatever width it gets: the columns of lowest priority give way
    (a dim line says which), every cell stays on one line, and the title never wraps.

    Args:
        title: shown above the table, on one line.
        header: column names.
        rows: the cells, as strings.
        priorities: per column, 0 (always shown) or higher (gives way earlier).
        left: how many leading columns are left-justified (names); the rest are figures.
        where_all: where a reader finds every column (e.g. "report.md").
    """

    def __init__(
        self,
        title: str,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        priorities: Sequence[int],
        *,
        left: int = 2,
        where_all: str = "",
    ) -> None:
        self.title = title
        self.header = list(header)
        self.rows = [list(row) for row in rows]
        self.priorities = list(priorities)
        self.left = left
        self.where_all = where_all

    def shown(self, console: Console, options: ConsoleOptions) -> list[int]:
        """The columns drawn at ``options.max_width``, with rich's own layout measured (what a column
        adds to its content, and what the table adds), so the result is exact."""
        from rich.measure import Measurement

        widths = [max([cell_len(h), *(cell_len(row[i]) for row in self.rows)]) for i, h in enumerate(self.header)]
        unbounded = options.update(max_width=1 << 16)  # the width a table wants, not what it gets

        def natural(columns: list[int]) -> int:
            return Measurement.get(console, unbounded, self._table(columns)).maximum

        every = list(range(len(widths)))
        if len(every) < 2:
            return every
        # drawn = sum(widths) + per_column x columns + fixed: two measures give both
        whole, first = natural(every) - sum(widths), natural([0]) - widths[0]
        per_column = (whole - first) // (len(every) - 1)
        return columns_that_fit(
            widths, self.priorities, options.max_width, per_column=per_column, fixed=first - per_column
        )

    def _table(self, shown: list[int]) -> Table:
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAVY, show_edge=False, pad_edge=False, header_style="bold")
        for i in shown:
            table.add_column(
                self.header[i], justify="left" if i < self.left else "right", no_wrap=True, overflow="ellipsis"
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        width = options.max_width
        shown = self.shown(console, options)
        title = Text(self.title, style="bold", no_wrap=True, overflow="ellipsis")
        title.truncate(width, overflow="ellipsis")
        yield title
        yield self._table(shown)
        left_out = [self.header[i] for i in range(len(self.header)) if i not in shown]
        if left_out:
            note = f"left out at this width: {', '.join(left_out)}"
            note += f" ({self.where_all} has every column)" if self.where_all else ""
            line = Text(note, style="dim", no_wrap=True, overflow="ellipsis")
            line.truncate(width, overflow="ellipsis")
            yield line
