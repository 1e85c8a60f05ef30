"""Progress for logs and scripts: a plain line every few seconds, one JSON object a line, or nothing.

All three read the same `RunSnapshot`s as the dashboard (`runner.ui.dashboard`) and follow the
same `Display` protocol (`runner.ui.display`).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from runner.ui import format as fmt
from runner.ui.batches import batches_summary

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from runner.engine.snapshots import RunSnapshot
    from runner.ui.dashboard import SnapshotSource


def _stamp(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _eta(snap: RunSnapshot) -> str:
    if snap.stopping and not snap.finished:
        return "--"
    if snap.finished:
        return "0s"
    return (">=" if snap.eta_s is not None and not snap.eta_complete else "") + fmt.duration(snap.eta_s)


def plain_line(snap: RunSnapshot) -> str:
    """One log line: ``[12:01:07] jobs 40/120 (33%) calls 312 in-flight 18 tok/s 8.2k $0.0412 ...``."""
    spend = fmt.usd(snap.usd_spent) + (f"/{fmt.usd(snap.usd_cap)}" if snap.usd_cap is not None else "")
    line = (
        f"[{_stamp(snap.now)}] jobs {snap.jobs_done}/{snap.jobs_total} ({snap.fraction_done:.0%}) "
        f"calls {snap.calls_done} in-flight {snap.calls_in_flight} tok/s {fmt.count(snap.tokens_per_s)} "
        f"{spend} 429s {snap.n429} eta {_eta(snap)}"
    )
    if snap.usd_earlier:
        line += f" (now {fmt.usd(snap.usd_now)}, earlier {fmt.usd(snap.usd_earlier)})"
    if snap.jobs_failed:
        line += f" failed {snap.jobs_failed}"
    if snap.jobs_skipped:
        line += f" resumed {snap.jobs_skipped}"
    waits = [f"{lane.name} waits for {lane.waiting_for}" for lane in snap.lanes if lane.waiting_for]
    if waits:
        line += " | " + ", ".join(waits)
    if snap.batches:
        line += f" | batches: {batches_summary(snap.batches)}"
    if snap.phase:
        line += f" | {snap.phase}"
    if snap.stopping:
        line += f" | {snap.stopping}"
    return line


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


class LineLog:
    """Plain progress lines for logs and pipes: one every ``interval`` seconds, and one at the end.

    What is being prepared is printed as it starts; notable events and failures
    (``RunSnapshot.recent``, ``.failures``) on lines of their own as they are first seen.
    """

    TICK_S = 0.25  # how often it looks: a Ctrl-C or a failure is printed at once, not at the next line

    def __init__(self, console: Console, title: str, *, interval: float = 5.0) -> None:
        self.console = console
        self.title = title
        self.every = interval  # seconds between progress lines
        self._get: SnapshotSource | None = None
        self._seen_recent: tuple[str, ...] = ()
        self._seen_failures: tuple[str, ...] = ()
        self._last_line = float("-inf")  # monotonic time of the last progress line
        self._last_stopping: str | None = None

    @property
    def interval(self) -> float:
        """How often the display loop calls `refresh` (`Display` protocol): more often than lines."""
        return min(self.every, self.TICK_S)

    @interval.setter
    def interval(self, seconds: float) -> None:
        self.every = seconds

    def start(self) -> None:
        """Nothing to say until the first phase."""

    def phase(self, text: str) -> None:
        self._print(f"[{_stamp(time.time())}] {self.title}: {text}")

    def print(self, renderable: RenderableType) -> None:
        self.console.print(renderable)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        yield

    def attach(self, get_snapshot: SnapshotSource) -> None:
        self._get = get_snapshot

    def refresh(self, *, line: bool = False) -> None:
        """Print the events seen since the last look, then the progress line when one is due
        (every `every` seconds, when the run starts stopping, or when ``line``)."""
        if self._get is None:
            return
        snap = self._get()
        stamp = _stamp(snap.now)
        for event in _new_events(self._seen_recent, snap.recent):
            self._print(f"[{stamp}] ! {event}")
        for failure in _new_events(self._seen_failures, snap.failures):
            self._print(f"[{stamp}] ✗ {failure}")
        self._seen_recent, self._seen_failures = snap.recent, snap.failures
        now = time.monotonic()
        if line or snap.stopping != self._last_stopping or now - self._last_line >= self.every:
            self._last_line, self._last_stopping = now, snap.stopping
            self._print(plain_line(snap))

    def stop(self) -> None:
        """Print the final line."""
        self.refresh(line=True)

    def _print(self, line: str) -> None:
        # soft_wrap: a log line must never be cut or wrapped at the console's guessed width
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


class JsonLines:
    """``--json-progress``: one JSON object a line on ``out``, for scripts.

    ``{"event": "phase", "phase": ...}`` as the run prepares, then ``{"event": "progress", ...}``
    (every field of `RunSnapshot`, lanes included) every ``interval`` seconds and once at the end.
    """

    def __init__(self, out: TextIO | None = None, *, interval: float = 1.0) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._get: SnapshotSource | None = None

    def emit(self, event: str, body: object) -> None:
        """Write one object: ``{"event": event, ...body}``."""
        import msgspec

        fields = msgspec.to_builtins(body)
        assert isinstance(fields, dict)
        self.out.write(msgspec.json.encode({"event": event, **fields}).decode() + "\n")
        self.out.flush()

    def start(self) -> None:
        """Nothing until the first phase."""

    def phase(self, text: str) -> None:
        self.emit("phase", {"phase": text, "at": time.time()})

    def print(self, renderable: RenderableType) -> None:
        """Human output does not belong on a JSON stream: dropped."""

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        yield

    def attach(self, get_snapshot: SnapshotSource) -> None:
        self._get = get_snapshot

    def refresh(self) -> None:
        if self._get is not None:
            self.emit("progress", self._get())

    def stop(self) -> None:
        self.refresh()


class Quiet:
    """``--quiet``: nothing at all (errors still go to stderr; the exit code tells the outcome)."""

    interval = 3600.0

    def start(self) -> None: ...

    def phase(self, text: str) -> None: ...

    def print(self, renderable: RenderableType) -> None: ...

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        yield

    def attach(self, get_snapshot: SnapshotSource) -> None: ...

    def refresh(self) -> None: ...

    def stop(self) -> None: ...
