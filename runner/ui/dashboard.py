"""Watching a run: a live rich dashboard on a terminal, plain periodic lines elsewhere.

Both displays implement the small `Display` protocol and only read `RunSnapshot`s through a
``get_snapshot`` callback; the runner never draws. `open_display` picks one and refreshes it
from a task on the event loop (not rich's refresh thread), so snapshots are always taken on the
loop that mutates the runner's counters.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import anyio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
)
from rich.table import Column, Table
from rich.text import Text

from runner.engine.snapshots import LaneSnapshot, RunSnapshot
from runner.ui import format as fmt

SnapshotSource = Callable[[], RunSnapshot]


def _eta(snap: RunSnapshot) -> str:
    # a run winding down will not finish its jobs: a time for them would mislead
    return "--" if snap.stopping and snap.jobs_done < snap.jobs_total else fmt.duration(snap.eta_s())


def plain_line(snap: RunSnapshot) -> str:
    """One log line: ``[12:01:07] jobs 40/120 (33%) calls 312 in-flight 18 tok/s 8.2k $0.0412 ...``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.now))
    spend = fmt.usd(snap.usd_spent) + (f"/{fmt.usd(snap.usd_cap)}" if snap.usd_cap is not None else "")
    line = (
        f"[{stamp}] jobs {snap.jobs_done}/{snap.jobs_total} ({snap.fraction_done:.0%}) "
        f"calls {snap.calls_done} in-flight {snap.calls_in_flight} tok/s {fmt.count(snap.tokens_per_s)} "
        f"{spend} 429s {snap.n429} eta {_eta(snap)}"
    )
    if snap.jobs_skipped:
        line += f" resumed {snap.jobs_skipped}"
    if snap.stopping:
        line += f" | {snap.stopping}"
    return line


# --- the display protocol ------------------------------------------------------------------------


class Display(Protocol):
    """What `open_display` drives: start once, refresh every ``interval`` seconds, stop once."""

    interval: float

    def start(self) -> None:
        """Begin displaying (may draw nothing yet)."""

    def refresh(self) -> None:
        """Take a snapshot and show it."""

    def stop(self) -> None:
        """Show the final state and release the terminal."""


class LineLog:
    """Plain progress lines for logs and pipes: one every ``interval`` seconds, and one at the end.

    Notable events (``RunSnapshot.recent``) are printed on lines of their own as they are first
    seen, so a log keeps the retries and 429s the runner reported (all of them, unless more than
    ``recent`` holds happen within one interval).
    """

    def __init__(self, console: Console, get_snapshot: SnapshotSource, *, interval: float = 5.0) -> None:
        self.console = console
        self.get_snapshot = get_snapshot
        self.interval = interval
        self._seen_recent: tuple[str, ...] = ()

    def start(self) -> None:
        """Print nothing: the first line comes after one interval, when there is news."""

    def refresh(self) -> None:
        """Print the events seen since the last line, then the progress line."""
        snap = self.get_snapshot()
        stamp = time.strftime("%H:%M:%S", time.localtime(snap.now))
        for event in _new_events(self._seen_recent, snap.recent):
            self._print(f"[{stamp}] ! {event}")
        self._seen_recent = snap.recent
        self._print(plain_line(snap))

    def stop(self) -> None:
        """Print the final line."""
        self.refresh()

    def _print(self, line: str) -> None:
        # soft_wrap: a log line must never be cut or wrapped at the console's guessed width
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _new_events(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[str, ...]:
    """The events of ``after`` not already shown from ``before``.

    When both are windows of one event log, that is the tail past their overlap. When they are
    not (e.g. several lanes' windows joined), fall back to a multiset difference: an identical
    repeat may go unprinted, but nothing is printed twice.
    """
    for overlap in range(min(len(before), len(after)), 0, -1):
        if before[-overlap:] == after[:overlap]:
            return after[overlap:]
    unseen = Counter(before)
    fresh = []
    for event in after:
        if unseen[event] > 0:
            unseen[event] -= 1
        else:
            fresh.append(event)
    return tuple(fresh)


# --- the live dashboard --------------------------------------------------------------------------


def _snap(task: Task) -> RunSnapshot:
    snap: RunSnapshot = task.fields["snapshot"]  # set by `LiveDashboard.render` before any column runs
    return snap


class EtaColumn(ProgressColumn):
    """Elapsed time and time left, from the snapshot's own pace (resumed jobs excluded)."""

    def render(self, task: Task) -> Text:
        snap = _snap(task)
        return Text.assemble(
            (fmt.duration(snap.elapsed_s), "progress.elapsed"),
            (" elapsed · eta ", "dim"),
            (_eta(snap), "progress.remaining"),
        )


class SpendColumn(ProgressColumn):
    """Dollars spent so far, against the cap and the estimate; red past 90 % of the cap."""

    def render(self, task: Task) -> Text:
        snap = _snap(task)
        text = Text("spent ", style="dim")
        style = _usage_style(snap.usd_spent, snap.usd_cap, base="bold green")
        text.append(fmt.usd(snap.usd_spent), style=style)
        if snap.usd_cap is not None:
            text.append(f" of {fmt.usd(snap.usd_cap)} cap", style="dim")
        if snap.usd_estimate is not None:
            text.append(f", est. {fmt.usd(snap.usd_estimate)}", style="dim")
        return text


class TokenRateColumn(ProgressColumn):
    """Output tokens per second over the runner's recent window; the run's average once done."""

    def render(self, task: Task) -> Text:
        snap = _snap(task)
        if snap.jobs_done >= snap.jobs_total and snap.elapsed_s > 0:
            # a recent window decays after the last call: the average says more about a finished run
            return Text.assemble((fmt.count(snap.tokens_out / snap.elapsed_s), "cyan"), (" tok/s avg", "dim"))
        return Text.assemble((fmt.count(snap.tokens_per_s), "cyan"), (" tok/s", "dim"))


class RateLimitColumn(ProgressColumn):
    """429 responses so far, over all lanes."""

    def render(self, task: Task) -> Text:
        n429 = _snap(task).n429
        return Text.assemble((str(n429), "bold red" if n429 else "green"), (" × 429", "dim"))


def _usage_style(used: float, limit: float | None, *, base: str = "") -> str:
    if not limit:
        return base
    share = used / limit
    return "bold red" if share >= 0.9 else "yellow" if share >= 0.7 else base or "green"


def _use_cell(used: float, limit: float | None) -> Text:
    text = Text(fmt.count(used), style=_usage_style(used, limit))
    text.append(f"/{fmt.count(limit)}" if limit else "", style="dim")
    return text


def _paused_cell(seconds: float) -> Text:
    return Text(f"{seconds:.1f}s", style="bold yellow") if seconds > 0 else Text("-", style="dim")


def _lane_cells(lane: LaneSnapshot) -> dict[str, Text]:
    return {
        "active": _use_cell(lane.in_flight, lane.concurrency_limit),
        "queued": Text(str(lane.waiting), style="yellow" if lane.waiting else "dim"),
        "req/min": _use_cell(lane.requests_last_min, lane.rpm_limit),
        "tok/min": _use_cell(lane.tokens_last_min, lane.tpm_limit),
        "paused": _paused_cell(lane.paused_for_s),
        "429s": Text(str(lane.n429), style="red" if lane.n429 else "dim"),
        "retries": Text(str(lane.retries), style="yellow" if lane.retries else "dim"),
        "errors": Text(str(lane.errors), style="bold red" if lane.errors else "dim"),
    }


COLUMNS = ("active", "queued", "req/min", "tok/min", "paused", "429s", "retries", "errors")
COMPACT_COLUMNS = ("active", "req/min", "tok/min", "429s")


def lanes_table(lanes: tuple[LaneSnapshot, ...], *, compact: bool = False) -> Table:
    """One row per lane: calls active and queued, RPM and TPM use against limits, pause, 429s, retries.

    Args:
        lanes: the lanes to show, in order.
        compact: only the columns in `COMPACT_COLUMNS`, for terminals under 80 columns.
    """
    # short headers and no edge padding: the full table fits 80 columns; when it cannot (long
    # lane names), only the lane column gives way, never a number
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold dim", expand=False)
    table.add_column("lane", style="bold", overflow="ellipsis")
    rows = [_lane_cells(lane) for lane in lanes]
    names = COMPACT_COLUMNS if compact else COLUMNS
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for lane, cells in zip(lanes, rows, strict=True):
        table.add_row(lane.name, *(cells[name] for name in names))
    return table


class LiveDashboard:
    """A rich live panel: the jobs bar with ETA, spend, tokens/s and 429s, then a table of lanes.

    Rendering is driven from outside (`refresh`), so tests render frames into a ``StringIO``
    console without waiting on a clock.
    """

    def __init__(self, console: Console, get_snapshot: SnapshotSource, *, interval: float = 0.25) -> None:
        self.console = console
        self.get_snapshot = get_snapshot
        self.interval = interval
        self._last: RunSnapshot | None = None
        # the bars' clock is the snapshot's, so the spinner and columns agree with the numbers
        clock = lambda: self._last.now if self._last else 0.0  # noqa: E731
        self._bar = Progress(
            SpinnerColumn(finished_text="[bold green]✓"),
            BarColumn(bar_width=None, complete_style="green", finished_style="bold green"),
            MofNCompleteColumn(),
            "[dim]jobs",
            TaskProgressColumn(),
            # the bar gives way on narrow terminals, never the times
            EtaColumn(table_column=Column(no_wrap=True)),
            console=console,
            auto_refresh=False,
            get_time=clock,
            expand=True,
        )
        self._meters = Progress(
            SpendColumn(),
            "[dim]·",
            TokenRateColumn(),
            "[dim]·",
            RateLimitColumn(),
            console=console,
            auto_refresh=False,
            get_time=clock,
        )
        self._tasks = (self._bar.add_task("jobs"), self._meters.add_task("meters"))
        self._started = False
        self._live = Live(console=console, auto_refresh=False, get_renderable=self._frame, transient=False)

    def start(self) -> None:
        """Take over the bottom of the terminal."""
        self._started = True
        self._live.start(refresh=False)

    def refresh(self) -> None:
        """Take a snapshot and redraw."""
        self._live.refresh()

    def stop(self) -> None:
        """Draw the final frame and leave it on screen."""
        self._live.stop()

    def _frame(self) -> RenderableType:
        # Live asks for a frame as soon as it is built: take no snapshot before `start`
        return self.render() if self._started else Text("")

    def render(self) -> RenderableType:
        """The current frame, from a fresh snapshot."""
        snap = self._last = self.get_snapshot()
        for progress, task in zip((self._bar, self._meters), self._tasks, strict=True):
            progress.update(task, total=snap.jobs_total, completed=snap.jobs_done, snapshot=snap)
        blank = Text("")
        lanes = lanes_table(snap.lanes, compact=self.console.width < 80)
        parts: list[RenderableType] = [self._bar, self._meters, blank, lanes]
        parts += [blank, _totals(snap)]
        if snap.recent:
            parts.append(Text("\n".join(f"· {event}" for event in snap.recent[-3:]), style="dim"))
        if snap.stopping:
            parts.append(Text(f"⏹ {snap.stopping}", style="bold yellow"))
        title = Text.assemble(("anytime ", "bold"), (snap.run_id, "bold cyan"))
        # a full-width bar is pleasant up to ~100 columns and silly beyond; two columns spare
        # leave room for the terminal's "^C" echo, which would otherwise wrap the last line and
        # leave a stale copy of the frame's top border behind on every later refresh
        width = max(20, min(self.console.width - 2, 100))
        return Panel(Group(*parts), title=title, title_align="left", border_style="blue", width=width)


def _totals(snap: RunSnapshot) -> Text:
    text = Text.assemble(
        ("calls ", "dim"),
        (f"{snap.calls_done}", "bold"),
        (" done, ", "dim"),
        (f"{snap.calls_in_flight}", "bold"),
        (" in flight  tokens ", "dim"),
        (fmt.count(snap.tokens_in), "bold"),
        (" in / ", "dim"),
        (fmt.count(snap.tokens_out), "bold"),
        (" out", "dim"),
    )
    if snap.jobs_skipped:
        text.append(f"  {snap.jobs_skipped} resumed", style="dim")
    return text


# --- choosing and driving a display ----------------------------------------------------------------


def make_display(
    console: Console,
    get_snapshot: SnapshotSource,
    *,
    plain: bool | None = None,
    interval: float | None = None,
) -> LiveDashboard | LineLog:
    """The dashboard on a terminal, the line log otherwise or when ``plain`` is True."""
    if plain is None:
        plain = not console.is_terminal or console.is_dumb_terminal
    if plain:
        return LineLog(console, get_snapshot, interval=5.0 if interval is None else interval)
    return LiveDashboard(console, get_snapshot, interval=0.25 if interval is None else interval)


@contextlib.asynccontextmanager
async def open_display(
    console: Console,
    get_snapshot: SnapshotSource,
    *,
    plain: bool | None = None,
    interval: float | None = None,
) -> AsyncIterator[Display]:
    """Show the run while the block runs; the final state is drawn on exit, even on cancellation.

    Args:
        console: where to draw.
        get_snapshot: called on the event loop each refresh; must be cheap and not block.
        plain: force the line log (True) or the dashboard (False); None picks by ``console``.
        interval: seconds between refreshes (default 0.25 for the dashboard, 5 for the line log).
    """
    display = make_display(console, get_snapshot, plain=plain, interval=interval)
    display.start()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_refresh_forever, display)
            try:
                yield display
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the refresh task never raises, so a group holds only the block's own error: hand that
        # back unwrapped, so callers' `except ConfigError` keep working under a display
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        try:
            display.stop()
        except Exception as exc:  # the block's own outcome (or error) matters more than a last frame
            _warn(display, exc)


async def _refresh_forever(display: Display) -> None:
    failed = False
    while True:
        await anyio.sleep(display.interval)
        try:
            display.refresh()
        except Exception as exc:  # a display bug must never stop a sweep that is spending money
            if not failed:
                failed = True
                _warn(display, exc)


def _warn(display: Display, exc: Exception) -> None:
    # stderr, not the console: the console may be the very thing that failed
    message = f"{type(exc).__name__}: {exc}"
    print(
        f"anytime: progress display ({type(display).__name__}) failed, run continues: {message}",
        file=sys.stderr,
    )
