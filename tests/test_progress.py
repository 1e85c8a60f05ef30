"""The dashboard and the line log, rendered into StringIO consoles at a fixed width."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable

import anyio
import pytest
from rich.console import Console

from runner.engine.snapshots import LaneSnapshot, RunSnapshot
from runner.ui import format as fmt
from runner.ui.dashboard import (
    LineLog,
    LiveDashboard,
    make_display,
    open_display,
    plain_line,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SIM = LaneSnapshot(
    name="sim",
    in_flight=16,
    waiting=40,
    concurrency_limit=16,
    rpm_limit=600,
    tpm_limit=200_000,
    requests_last_min=430,
    tokens_last_min=190_000,
    paused_for_s=1.5,
    n429=3,
    retries=4,
)
OPENAI = LaneSnapshot(name="openai", in_flight=2, concurrency_limit=8, requests_last_min=12, tokens_last_min=5000)


def snapshot(**fields: object) -> RunSnapshot:
    base: dict[str, object] = {
        "run_id": "demo-1",
        "started_at": 1000.0,
        "now": 1072.0,
        "jobs_total": 120,
        "jobs_done": 40,
        "calls_done": 312,
        "calls_in_flight": 18,
        "tokens_in": 51_234,
        "tokens_out": 812_345,
        "tokens_per_s": 8234.0,
        "usd_spent": 0.0412,
        "lanes": (SIM, OPENAI),
    }
    return RunSnapshot(**(base | fields))  # type: ignore[arg-type]


def console(*, terminal: bool, width: int = 100) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)


def output(c: Console) -> str:
    assert isinstance(c.file, io.StringIO)
    return ANSI.sub("", c.file.getvalue())


def stamp(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (812, "812"),
        (8234, "8.2k"),
        (12_345, "12.3k"),
        (99_990, "100k"),
        (123_456, "123k"),
        (1_234_567, "1.2M"),
        (4_000_000, "4M"),
        (3000, "3k"),
        (2.5, "2.5"),
        (42.4, "42"),
    ],
)
def test_fmt_count(n: float, text: str) -> None:
    assert fmt.count(n) == text


@pytest.mark.parametrize(("x", "text"), [(0, "$0.0000"), (0.0123, "$0.0123"), (12.345, "$12.35"), (4321.0, "$4,321")])
def test_fmt_usd(x: float, text: str) -> None:
    assert fmt.usd(x) == text


@pytest.mark.parametrize(
    ("s", "text"),
    [(None, "--"), (float("inf"), "--"), (0.4, "0s"), (45, "45s"), (72, "1m12s"), (7500, "2h05m")],
)
def test_fmt_duration(s: float | None, text: str) -> None:
    assert fmt.duration(s) == text


def test_plain_line_has_the_documented_shape() -> None:
    # 72 s for 40 jobs, 80 left -> 144 s
    assert plain_line(snapshot()) == (
        f"[{stamp(1072.0)}] jobs 40/120 (33%) calls 312 in-flight 18 tok/s 8.2k $0.0412 429s 3 eta 2m24s"
    )


def test_plain_line_shows_cap_resumed_and_stopping() -> None:
    line = plain_line(snapshot(usd_cap=5.0, jobs_skipped=10, stopping="Ctrl-C: finishing in-flight calls"))
    assert "$0.0412/$5.00 " in line
    assert "eta -- resumed 10 | Ctrl-C: finishing in-flight calls" in line  # no ETA while winding down
    # pace of the 30 jobs run here in 72 s, not of all 40 done
    assert plain_line(snapshot(jobs_skipped=10)).endswith("eta 3m12s resumed 10")


def test_line_log_prints_each_event_once_and_never_wraps() -> None:
    snaps = iter(
        [
            snapshot(recent=("429 from sim: retry in 1.5s",)),
            snapshot(recent=("429 from sim: retry in 1.5s", "retry 2 of job abc")),
            snapshot(recent=("retry 2 of job abc", "spend cap reached"), stopping="spend cap reached"),
        ]
    )
    c = console(terminal=False, width=40)
    log = LineLog(c, lambda: next(snaps))
    log.refresh()
    log.refresh()
    log.stop()
    lines = output(c).splitlines()
    events = [line.split("] ! ", 1)[1] for line in lines if "] ! " in line]
    assert events == ["429 from sim: retry in 1.5s", "retry 2 of job abc", "spend cap reached"]
    progress = [line for line in lines if "] jobs " in line]
    assert len(progress) == 3
    assert progress[-1].endswith("| spend cap reached")  # one long line despite width 40


def render_dashboard(snap: RunSnapshot, *, width: int = 100) -> str:
    c = console(terminal=True, width=width)
    board = LiveDashboard(c, lambda: snap)
    board.start()
    board.refresh()
    board.stop()
    return output(c)


def last_frame(text: str) -> str:
    return text[text.rindex("╭") :]


def test_dashboard_shows_bar_meters_and_lanes() -> None:
    frame = last_frame(render_dashboard(snapshot(usd_cap=5.0, usd_estimate=0.15)))
    assert "anytime demo-1" in frame
    assert "40/120 jobs" in frame and "33%" in frame and "1m12s elapsed · eta 2m24s" in frame
    assert "spent $0.0412 of $5.00 cap" in frame
    assert "8.2k tok/s" in frame and "3 × 429" in frame
    assert re.search(r"sim\s+16/16\s+40\s+430/600\s+190k/200k\s+1\.5s\s+3\s+4\s+0", frame)
    assert re.search(r"openai\s+2/8\s+0\s+12\s+5k\s+-\s+0\s+0\s+0", frame)
    assert "calls 312 done, 18 in flight" in frame and "51.2k in / 812k out" in frame
    assert "est. $0.1500" in frame


def test_dashboard_shows_recent_events_and_stopping() -> None:
    recent = tuple(f"event {i}" for i in range(5))
    frame = last_frame(render_dashboard(snapshot(recent=recent, stopping="Ctrl-C: finishing in-flight calls")))
    assert "event 1" not in frame and all(f"· event {i}" in frame for i in (2, 3, 4))
    assert "Ctrl-C: finishing in-flight calls" in frame


def test_dashboard_fits_a_narrow_terminal() -> None:
    frame = last_frame(render_dashboard(snapshot(), width=60))
    assert all(len(line) <= 60 for line in frame.splitlines())
    assert "40/120" in frame and "eta 2m24s" in frame  # the bar gave way, not the times
    assert re.search(r"lane\s+active\s+req/min\s+tok/min\s+429s\s+│", frame)  # compact table
    assert re.search(r"sim\s+16/16\s+430/600\s+190k/200k\s+3", frame)


def test_dashboard_colours_limits_near_their_cap() -> None:
    c = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    c.print(LiveDashboard(c, lambda: snapshot()).render())
    raw = c.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[1;31m190k" in raw  # 95 % of TPM: bold red
    assert "\x1b[33m430" in raw  # 72 % of RPM: yellow


def test_dashboard_finished_and_empty_sweeps() -> None:
    done = last_frame(render_dashboard(snapshot(jobs_done=120)))
    assert "✓" in done
    assert "11.3k tok/s avg" in done  # 812,345 tokens over 72 s, not the decaying recent window
    assert "0/0" in last_frame(render_dashboard(snapshot(jobs_total=0, jobs_done=0, lanes=())))


@pytest.mark.parametrize(
    ("terminal", "plain", "kind"),
    [
        (True, None, LiveDashboard),
        (False, None, LineLog),
        (True, True, LineLog),
        (False, False, LiveDashboard),
    ],
)
def test_make_display_picks_by_terminal(terminal: bool, plain: bool | None, kind: type) -> None:
    display = make_display(console(terminal=terminal), snapshot, plain=plain)
    assert isinstance(display, kind)
    assert display.interval == (5.0 if kind is LineLog else 0.25)


def counting_source(after: int, event: anyio.Event) -> Callable[[], RunSnapshot]:
    calls = 0

    def get() -> RunSnapshot:
        nonlocal calls
        calls += 1
        if calls >= after:
            event.set()
        return snapshot(jobs_done=min(calls, 120))

    return get


async def test_open_display_refreshes_until_the_block_ends() -> None:
    c = console(terminal=False)
    refreshed = anyio.Event()
    with anyio.fail_after(5):
        async with open_display(c, counting_source(3, refreshed), interval=0.001) as display:
            assert isinstance(display, LineLog)
            await refreshed.wait()
    lines = output(c).splitlines()
    assert len(lines) >= 3  # at least two periodic lines and the final one
    assert lines[-1].startswith(f"[{stamp(1072.0)}] jobs ")


async def test_open_display_draws_final_frame_when_the_body_fails() -> None:
    c = console(terminal=True)
    with pytest.raises(KeyError):  # unwrapped: no ExceptionGroup leaks out of the display
        async with open_display(c, snapshot, interval=3600):
            raise KeyError("boom")
    assert "40/120 jobs" in output(c)


async def test_open_display_draws_final_frame_on_cancellation() -> None:
    c = console(terminal=False)
    with anyio.CancelScope() as scope:
        async with open_display(c, snapshot, interval=3600):
            scope.cancel()
            await anyio.sleep_forever()
    assert output(c).count("] jobs 40/120") == 1


async def test_a_failing_snapshot_does_not_stop_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    calls = 0
    healthy = anyio.Event()

    def flaky() -> RunSnapshot:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("lane table changed size")
        healthy.set()
        return snapshot()

    c = console(terminal=False)
    with anyio.fail_after(5):
        async with open_display(c, flaky, interval=0.001):
            await healthy.wait()
    err = capsys.readouterr().err
    assert err.count("progress display (LineLog) failed, run continues") == 1
    assert "RuntimeError: lane table changed size" in err
    assert "] jobs 40/120" in output(c)


@pytest.mark.parametrize("terminal", [True, False])
async def test_a_failing_final_frame_does_not_mask_the_outcome(
    terminal: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> RunSnapshot:
        raise RuntimeError("no snapshot")

    c = console(terminal=terminal)
    with pytest.raises(KeyError):
        async with open_display(c, broken, interval=3600):
            raise KeyError("the real error")
    assert "RuntimeError: no snapshot" in capsys.readouterr().err
    async with open_display(c, broken, interval=3600):
        pass  # a clean block stays clean


def test_line_log_never_repeats_events_from_joined_lane_windows() -> None:
    # two lanes' recent events joined: lane a gains an event in the middle of the tuple
    snaps = iter([snapshot(recent=("a: 429", "b: retry")), snapshot(recent=("a: 429", "a: retry", "b: retry"))])
    c = console(terminal=False)
    log = LineLog(c, lambda: next(snaps))
    log.refresh()
    log.refresh()
    events = [line.split("] ! ", 1)[1] for line in output(c).splitlines() if "] ! " in line]
    assert events == ["a: 429", "b: retry", "a: retry"]


def test_dashboard_rows_do_not_wrap_at_80_columns() -> None:
    frame = last_frame(render_dashboard(snapshot(usd_cap=5.0, usd_estimate=0.15, jobs_skipped=10), width=80))
    assert re.search(r"lane\s+active\s+queued\s+req/min\s+tok/min\s+paused\s+429s\s+retries\s+errors", frame)
    assert re.search(r"calls 312 done, 18 in flight .* 10 resumed", frame)
    assert "spent $0.0412 of $5.00 cap, est. $0.1500 · 8.2k tok/s · 3 × 429" in frame
    assert "190k/200k" in frame
    assert re.search(r"40/120 jobs\s+33% 1m12s elapsed · eta", frame)
