"""A run's provider batches (``run.mode = "batch"``) as the dashboard and the line log show them.

One line sums them up (``batches: 2 in progress, 130 of 300 requests done, 1 ended``) and, on the
dashboard, one row per batch: which lane and model, its state (``submitting``, ``submitted``,
``in progress``, ``ended``, ``expired``), ``n of m`` requests done, those that failed, and its
age. A batch may take the provider up to 24 hours: that, not a pace, is what the run waits for.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rich.text import Text

from runner.ui import format as fmt
from runner.ui.fit import text_table

if TYPE_CHECKING:
    from runner.engine.snapshots import BatchSnapshot

_STATE_STYLE = {"ended": "green", "expired": "red", "in progress": "cyan", "submitted": "yellow"}
# header, priority (0: never left out), left-justified
_COLUMNS = (
    ("batch", 3, True),
    ("lane", 0, True),
    ("model", 1, True),
    ("state", 0, True),
    ("done", 0, False),
    ("failed", 2, False),
    ("age", 2, False),
)


def batches_summary(batches: tuple[BatchSnapshot, ...]) -> str:
    """``2 in progress, 130 of 300 requests done, 1 ended`` (every batch the snapshot holds)."""
    states = Counter(b.state for b in batches)
    live = [b for b in batches if b.state not in ("ended", "expired")]
    parts = [f"{n} {state}" for state, n in states.items() if state not in ("ended", "expired")]
    if live:
        parts.append(f"{sum(b.done for b in live)} of {sum(b.total for b in live)} requests done")
    parts += [f"{states[s]} {s}" for s in ("ended", "expired") if states[s]]
    return ", ".join(parts) + " (a batch may take up to 24 h)" if live else ", ".join(parts)


def _cells(batch: BatchSnapshot) -> list[Text]:
    return [
        Text(batch.batch_id or batch.key, style="dim"),
        Text(batch.lane, style="bold"),
        Text(batch.model),
        Text(batch.state, style=_STATE_STYLE.get(batch.state, "")),
        Text(f"{batch.done} of {batch.total}"),
        Text(str(batch.failed), style="red" if batch.failed else "dim"),
        Text(fmt.duration(batch.age_s), style="dim"),
    ]


def batches_table(batches: tuple[BatchSnapshot, ...], width: int) -> Text:
    """One line per batch under a header, with the columns that fit ``width``."""
    rows = [_cells(b) for b in batches]
    headers, priorities, left = zip(*_COLUMNS, strict=True)
    return text_table(headers, rows, priorities, left, width, first_max=24)
