"""The live dashboard: one rich panel, redrawn a few times a second, that fits any terminal width.

It is on screen from the first moments of `anytime run` (a frame saying what is being prepared:
the estimate, the plan, the simulator) and then shows the run from `RunSnapshot`s: jobs and
the time left, dollars against the estimate and the cap (a resume's earlier spend apart), the
pace, one row per lane (in flight against the concurrency allowed, the share of the
requests/min and tokens/min windows in use, 429s, errors by kind, and what calls wait for), and
the last failures, one line each; in batch mode, the provider batches and their states
(`runner.ui.batches`). Every line and every row is one terminal line: at narrow
widths parts are left out by priority (`runner.ui.fit`), never wrapped.

Refreshing is driven from outside (`refresh`): by a small thread while the CLI prepares, then by
a task on the event loop, so snapshots are always taken on the loop that changes the counters.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.text import Text

from runner.ui import format as fmt
from runner.ui.batches import batches_summary, batches_table
from runner.ui.fit import fit_line, text_table

if TYPE_CHECKING:  # the figures only: msgspec loads with the engine, after the first frame
    from runner.engine.snapshots import LaneSnapshot, RunSnapshot

SnapshotSource = Callable[[], "RunSnapshot"]

MAX_WIDTH = 120  # wider than every lane column together; a wider panel only spreads the bar
FAILURE_LINES = 3
EVENT_LINES = 2
BATCH_ROWS = 8  # provider batches listed (batch mode): the last ones

# error classes as a lane cell names them (the ledger's own labels otherwise)
_KIND = {"server": "5xx", "stream_broken": "broken", "unreachable": "unreach.", "configuration": "config"}


def _eta(snap: RunSnapshot) -> str:
    """The time left, ``≥ 12s`` while a lane cannot tell yet, ``--`` while none can or the run winds down."""
    if snap.stopping and not snap.finished:
        return "--"  # a run winding down will not finish its jobs: a time for them would mislead
    if snap.finished:
        return "0s"
    at_least = "≥ " if snap.eta_s is not None and not snap.eta_complete else ""
    return at_least + fmt.duration(snap.eta_s)


# --- the lanes table ---------------------------------------------------------------------------------


def _share(used: float | None) -> Text:
    if used is None:
        return Text("-", style="dim")  # no limit known: no window to be a share of
    style = "bold red" if used >= 0.9 else "yellow" if used >= 0.7 else "green"
    return Text(f"{used:.0%}", style=style)


def _waiting(lane: LaneSnapshot) -> Text:
    if lane.waiting_for is None:
        return Text("-", style="dim")
    text = lane.waiting_for
    if lane.waiting_for == "retry-after" and lane.paused_for_s > 0:
        text += f" {lane.paused_for_s:.1f}s"
    return Text(text, style="bold yellow")


def _errors(lane: LaneSnapshot) -> Text:
    kinds = [(kind, n) for kind, n in lane.errors_by_kind if kind != "rate_limit"]  # 429s have their column
    if not kinds:
        return Text("-", style="dim")
    return Text(" ".join(f"{n} {_KIND.get(kind, kind)}" for kind, n in kinds), style="red")


def _limits(lane: LaneSnapshot) -> Text:
    parts = [f"{fmt.count(lane.rpm_limit)} req" if lane.rpm_limit else "", ""]
    parts[1] = f"{fmt.count(lane.tpm_limit)} tok" if lane.tpm_limit else ""
    text = " · ".join(p for p in parts if p)
    return Text(f"{text}/min" if text else "learning", style="dim")


def _in_flight(lane: LaneSnapshot) -> Text:
    """Calls in flight against the concurrency allowed now (adaptive: it drops after 429 bursts)."""
    if lane.concurrency_limit is None:
        return Text(str(lane.in_flight))
    return Text(f"{lane.in_flight}/{lane.concurrency_limit}")


def _count(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim")


@dataclass(frozen=True)
class LaneColumn:
    header: str
    priority: int  # 0: always shown; higher numbers give way first at narrow widths
    cell: Callable[[LaneSnapshot], Text]
    justify: str = "right"


LANE_COLUMNS: tuple[LaneColumn, ...] = (
    LaneColumn("lane", 0, lambda lane: Text(lane.name, style="bold"), "left"),
    LaneColumn("in flight", 1, lambda lane: _in_flight(lane)),
    LaneColumn("req/min", 2, lambda lane: _share(lane.rpm_used)),
    LaneColumn("tok/min", 2, lambda lane: _share(lane.tpm_used)),
    LaneColumn("waiting for", 1, _waiting, "left"),
    LaneColumn("429s", 3, lambda lane: _count(lane.n429, "red")),
    LaneColumn("errors", 4, _errors, "left"),
    LaneColumn("tok/s", 5, lambda lane: Text(fmt.count(lane.tokens_per_s), style="cyan")),
    LaneColumn("retries", 6, lambda lane: _count(lane.retries, "yellow")),
    LaneColumn("queued", 7, lambda lane: _count(lane.waiting, "yellow")),
    LaneColumn("limits", 8, _limits, "left"),
)
_LANE_NAME_MAX = 16


def lanes_table(lanes: tuple[LaneSnapshot, ...], width: int) -> Text:
    """One line per lane under a header, with the columns that fit ``width`` (see `LANE_COLUMNS`
    for their priority), two spaces apart.

    ``req/min`` and ``tok/min`` are the share of each limit's current window in use (100% = the
    lane waits for it), never a count over the last 60 s that a draining window lets exceed the limit.
    """
    cells = [[column.cell(lane) for column in LANE_COLUMNS] for lane in lanes]
    return text_table(
        [c.header for c in LANE_COLUMNS],
        cells,
        [c.priority for c in LANE_COLUMNS],
        [c.justify == "left" for c in LANE_COLUMNS],
        width,
        first_max=_LANE_NAME_MAX,
    )


# --- the lines above and below it ------------------------------------------------------------------


def _bar(done: int, total: int, width: int) -> Text:
    """A progress bar of ``width`` cells (drawn by hand, as cheap as a line of text)."""
    filled = width if total <= 0 else min(width, round(width * done / total))
    return Text.assemble(("━" * filled, "green"), ("━" * (width - filled), "bright_black"))


def _progress_line(snap: RunSnapshot, width: int, spinner: Text) -> Text:
    done = f"{snap.jobs_done}/{snap.jobs_total} jobs ({snap.fraction_done:.0%})"
    segments: list[tuple[Text, int]] = [(Text(done, style="bold"), 0)]
    if snap.jobs_failed:
        segments.append((Text(f"{snap.jobs_failed} failed", style="bold red"), 0))
    segments.append((Text(f"{fmt.duration(snap.elapsed_s)} elapsed", style="dim"), 2))
    if snap.phase:
        segments.append((Text(f"{snap.phase}…", style="yellow"), 0))
    else:
        segments.append((Text.assemble(("eta ", "dim"), (_eta(snap), "bold magenta")), 0))
    text = fit_line(segments, max(10, width - 2))
    bar_width = width - spinner.cell_len - text.cell_len - 2
    line = Text.assemble(spinner, " ")
    if bar_width >= 10:  # the bar gives way first, never the times
        line.append_text(_bar(snap.jobs_done, snap.jobs_total, bar_width))
        line.append(" ")
    line.append_text(text)
    line.no_wrap = True
    return line


def _spend_line(snap: RunSnapshot, width: int) -> Text:
    cap_style = _cap_style(snap.usd_spent, snap.usd_cap)
    if snap.usd_earlier > 0:  # a resume: what this process spends, apart from what earlier ones did
        segments = [
            (Text.assemble(("spent ", "dim"), (fmt.usd(snap.usd_now), "bold green"), (" now", "dim")), 0),
            (Text(f"est. {fmt.usd(snap.usd_estimate)} for the rest", style="dim"), 1),
            (Text(f"earlier runs {fmt.usd(snap.usd_earlier)}", style="dim"), 1),
            (Text(f"{fmt.usd(snap.usd_spent)} in all", style=cap_style), 2),
        ]
    else:
        segments = [
            (Text.assemble(("spent ", "dim"), (fmt.usd(snap.usd_spent), cap_style or "bold green")), 0),
            (Text(f"est. {fmt.usd(snap.usd_estimate)}", style="dim"), 1),
        ]
    if snap.usd_cap is not None:
        segments.append((Text(f"cap {fmt.usd(snap.usd_cap)}", style=cap_style or "dim"), 1))
    return fit_line(segments, width)


def _cap_style(spent: float, cap: float | None) -> str:
    if not cap:
        return ""
    return "bold red" if spent >= 0.9 * cap else "yellow" if spent >= 0.7 * cap else ""


def _calls_line(snap: RunSnapshot, width: int) -> Text:
    average = snap.finished and snap.elapsed_s > 0
    rate = snap.tokens_out / snap.elapsed_s if average else snap.tokens_per_s
    segments = [
        (Text.assemble((fmt.count(rate), "cyan"), (" tok/s avg" if average else " tok/s", "dim")), 0),
        (Text(f"{snap.calls_done} calls done", style="dim"), 1),
        (Text(f"{snap.calls_in_flight} in flight", style="dim"), 2),
        (Text(f"{snap.n429} × 429", style="red" if snap.n429 else "dim"), 1),
        (Text(f"tokens {fmt.count(snap.tokens_in)} in / {fmt.count(snap.tokens_out)} out", style="dim"), 3),
    ]
    if snap.jobs_skipped:
        segments.append((Text(f"{snap.jobs_skipped} jobs resumed from the ledger", style="dim"), 2))
    return fit_line(segments, width)


def _one_line(text: str, width: int, style: str) -> Text:
    line = Text(" ".join(text.split()), style=style, no_wrap=True, overflow="ellipsis")
    line.truncate(width, overflow="ellipsis")
    return line


def render_frame(snap: RunSnapshot, width: int, *, spinner: Text | None = None) -> Panel:
    """The dashboard for one snapshot, ``width`` columns wide at most."""
    width = max(30, min(width, MAX_WIDTH))
    inner = width - 4  # borders and padding
    mark = Text("✓", style="bold green") if snap.finished else spinner or Text("·")
    parts: list[RenderableType] = [
        _progress_line(snap, inner, mark),
        _spend_line(snap, inner),
        _calls_line(snap, inner),
    ]
    if snap.lanes:
        parts += [Text(""), lanes_table(snap.lanes, inner)]
    if snap.batches:
        summary = _one_line(f"batches: {batches_summary(snap.batches)}", inner, "")
        parts += [Text(""), summary, batches_table(snap.batches[-BATCH_ROWS:], inner)]
    notes = [_one_line(f"✗ {f}", inner, "red") for f in snap.failures[-FAILURE_LINES:]]
    notes += [_one_line(f"· {e}", inner, "dim") for e in snap.recent[-EVENT_LINES:]]
    if snap.stopping:
        notes.append(_one_line(f"⏹ {snap.stopping}", inner, "bold yellow"))
    parts += [Text(""), *notes] if notes else []
    title = Text.assemble(("anytime ", "bold"), (snap.run_id, "bold cyan"))
    return Panel(Group(*parts), title=title, title_align="left", border_style="blue", width=width)


def render_preparing(title: str, phase: str, width: int, spinner: Text) -> Panel:
    """The frame shown before the run has a snapshot: what is being prepared."""
    width = max(30, min(width, MAX_WIDTH))
    line = fit_line([(Text.assemble(spinner, " ", (f"{phase}…", "yellow")), 0)], width - 4)
    heading = Text.assemble(("anytime ", "bold"), (title, "bold cyan"))
    return Panel(line, title=heading, title_align="left", border_style="blue", width=width)


# --- the live display ----------------------------------------------------------------------------------


class LiveDashboard:
    """The panel on a terminal, drawn at once (`start`) and redrawn at most every ``interval`` seconds.

    Two columns of the terminal stay free: the terminal's "^C" echo would otherwise wrap the last
    line and leave a stale copy of the frame's top border behind on every later refresh.
    """

    def __init__(self, console: Console, title: str, *, interval: float = 0.25) -> None:
        self.console = console
        self.title = title
        self.interval = interval
        self._phase = "starting"
        self._get: SnapshotSource | None = None
        self._spinner = Spinner("dots", style="cyan")
        self._live = Live(console=console, auto_refresh=False, get_renderable=self._frame, transient=False)
        self._ticker: threading.Thread | None = None
        self._halt = threading.Event()

    # the CLI's side: before the sweep has a snapshot

    def start(self) -> None:
        """Draw the first frame now and keep it moving while the CLI prepares."""
        self._live.start(refresh=True)
        self._tick_in_background()

    def phase(self, text: str) -> None:
        self._phase = text

    def print(self, renderable: RenderableType) -> None:
        """Print above the panel (the estimate, a warning)."""
        self.console.print(renderable)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Take the panel off the screen for a prompt, and bring it back."""
        self._stop_ticking()
        self._live.transient = True
        self._live.stop()
        try:
            yield
        finally:
            self._live.transient = False
            self._live.start(refresh=True)
            if self._get is None:
                self._tick_in_background()

    # the sweep's side

    def attach(self, get_snapshot: SnapshotSource) -> None:
        """From now on frames show ``get_snapshot()``, refreshed by the caller (on its event loop)."""
        self._stop_ticking()
        self._get = get_snapshot

    def refresh(self) -> None:
        """Take a snapshot and redraw."""
        self._live.refresh()

    def stop(self) -> None:
        """Draw the last frame and leave it (a frame of preparation only is wiped)."""
        self._stop_ticking()
        if self._get is None:
            self._live.transient = True
        self._live.stop()

    def _frame(self) -> RenderableType:
        # two columns spare, see the class docstring
        width = self.console.width - 2
        spinner = self._spinner.render(time.monotonic())
        assert isinstance(spinner, Text)
        if self._get is None:
            return render_preparing(self.title, self._phase, width, spinner)
        return render_frame(self._get(), width, spinner=spinner)

    def _tick_in_background(self) -> None:
        self._halt.clear()
        self._ticker = threading.Thread(target=self._tick, name="anytime-dashboard", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._halt.wait(self.interval):
            self._live.refresh()

    def _stop_ticking(self) -> None:
        if self._ticker is not None:
            self._halt.set()
            self._ticker.join()
            self._ticker = None
