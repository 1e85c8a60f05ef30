"""The dashboard and the line log, rendered into StringIO consoles at a fixed width."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable

import anyio
import msgspec
import pytest
from rich.console import Console

from runner.engine.snapshots import LaneSnapshot, RunSnapshot
from runner.ui import format as fmt
from runner.ui.dashboard import LANE_COLUMNS, LiveDashboard, lanes_table, render_frame
from runner.ui.display import Display, make_display, open_display, shown
from runner.ui.progress_log import JsonLines, LineLog, Quiet, plain_line

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SIM = LaneSnapshot(
    name="sim",
    in_flight=16,
    waiting=40,
    concurrency_limit=16,
    rpm_limit=600,
    tpm_limit=200_000,
    rpm_used=0.72,
    tpm_used=0.95,
    requests_last_min=624,  # a draining window lets the last 60 s exceed the limit: never shown
    tokens_last_min=190_000,
    tokens_per_s=6_100.0,
    paused_for_s=1.5,
    waiting_for="retry-after",
    n429=3,
    retries=4,
    errors=5,
    errors_by_kind=(("rate_limit", 3), ("server", 1), ("timeout", 1)),
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
        "eta_s": 144.0,
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
    assert plain_line(snapshot()) == (
        f"[{stamp(1072.0)}] jobs 40/120 (33%) calls 312 in-flight 18 tok/s 8.2k $0.0412 429s 3 eta 2m24s"
        " | sim waits for retry-after"
    )


def test_plain_line_shows_cap_resume_failures_and_stopping() -> None:
    snap = snapshot(
        usd_cap=5.0, usd_earlier=0.03, jobs_skipped=10, jobs_failed=2, stopping="Ctrl-C: finishing in-flight calls"
    )
    line = plain_line(snap)
    assert "$0.0412/$5.00 " in line and "(now $0.0112, earlier $0.0300)" in line
    assert "eta -- (now" in line  # no time left while winding down
    assert "failed 2 resumed 10" in line and line.endswith("| Ctrl-C: finishing in-flight calls")


def test_line_log_prints_each_event_and_failure_once_and_never_wraps() -> None:
    snaps = iter(
        [
            snapshot(recent=("429 from sim: retry in 1.5s",)),
            snapshot(recent=("429 from sim: retry in 1.5s", "retry 2 of job abc"), failures=("sim: trace failed",)),
            snapshot(recent=("retry 2 of job abc", "spend cap reached"), stopping="spend cap reached"),
        ]
    )
    c = console(terminal=False, width=40)
    log = LineLog(c, "demo")
    log.attach(lambda: next(snaps))
    log.refresh()
    log.refresh()
    log.stop()
    lines = output(c).splitlines()
    events = [line.split("] ! ", 1)[1] for line in lines if "] ! " in line]
    assert events == ["429 from sim: retry in 1.5s", "retry 2 of job abc", "spend cap reached"]
    assert [line.split("] ✗ ", 1)[1] for line in lines if "] ✗ " in line] == ["sim: trace failed"]
    progress = [line for line in lines if "] jobs " in line]
    # the first look prints a line; the second is within the interval and changes nothing; the
    # third starts the stop, which is printed at once
    assert len(progress) == 2
    assert progress[-1].endswith("| spend cap reached")  # one long line despite width 40


def test_line_log_prints_a_line_when_due_or_when_the_run_starts_stopping() -> None:
    snaps = iter(
        [snapshot(), snapshot(), snapshot(stopping="interrupted (SIGINT)"), snapshot(stopping="interrupted (SIGINT)")]
    )
    c = console(terminal=False)
    log = LineLog(c, "demo", interval=3600.0)
    assert log.interval == LineLog.TICK_S  # it looks often, and prints lines only when due
    log.attach(lambda: next(snaps))
    for _ in range(4):
        log.refresh()
    progress = [line for line in output(c).splitlines() if "] jobs " in line]
    assert len(progress) == 2 and progress[1].endswith("| interrupted (SIGINT)")
    log.interval = 0.0  # `--progress-every`: every look is due
    log.attach(lambda: snapshot())
    log.refresh()
    assert len([line for line in output(c).splitlines() if "] jobs " in line]) == 3


def test_line_log_never_repeats_events_from_joined_lane_windows() -> None:
    # two lanes' recent events joined: lane a gains an event in the middle of the tuple
    snaps = iter([snapshot(recent=("a: 429", "b: retry")), snapshot(recent=("a: 429", "a: retry", "b: retry"))])
    c = console(terminal=False)
    log = LineLog(c, "demo")
    log.attach(lambda: next(snaps))
    log.refresh()
    log.refresh()
    events = [line.split("] ! ", 1)[1] for line in output(c).splitlines() if "] ! " in line]
    assert events == ["a: 429", "b: retry", "a: retry"]


def frame(snap: RunSnapshot, *, width: int = 100, color: bool = False) -> str:
    c = Console(file=io.StringIO(), width=width, force_terminal=True, color_system="standard" if color else None)
    c.print(render_frame(snap, width))
    return c.file.getvalue() if color else output(c)  # type: ignore[attr-defined]


def test_dashboard_shows_jobs_money_pace_and_lanes() -> None:
    text = frame(snapshot(usd_cap=5.0, usd_estimate=0.15))
    assert "anytime demo-1" in text
    assert "40/120 jobs (33%) · 1m12s elapsed · eta 2m24s" in text
    assert "spent $0.0412 · est. $0.1500 · cap $5.00" in text
    assert "8.2k tok/s · 312 calls done · 18 in flight · 3 × 429" in text
    header = next(line for line in text.splitlines() if " lane " in line)
    assert re.search(r"lane\s+in flight\s+req/min\s+tok/min\s+waiting for\s+429s\s+errors\s+tok/s\s+retries", header)
    assert re.search(r"sim\s+16/16\s+72%\s+95%\s+retry-after 1\.5s\s+3\s+1 5xx 1 timeout\s+6\.1k\s+4", text)
    assert re.search(r"openai\s+2/8\s+-\s+-\s+-\s+0\s+-", text)  # no limit known: no share to show
    assert "624" not in text  # requests in the last 60 s over a 600/min limit would read as a breach


def test_dashboard_shows_a_resumes_earlier_spend_apart() -> None:
    snap = snapshot(usd_spent=0.30, usd_earlier=0.25, usd_estimate=0.06, usd_cap=1.0, jobs_skipped=30)
    text = frame(snap, width=120)
    assert "spent $0.0500 now · est. $0.0600 for the rest · earlier runs $0.2500 · $0.3000 in all · cap $1.00" in text
    assert "30 jobs resumed from the ledger" in text


def test_dashboard_shows_failures_events_and_stopping_one_line_each() -> None:
    failures = tuple(f"sim: trace of m failed after 6 attempt(s): boom {i} " + "x" * 200 for i in range(4))
    recent = tuple(f"event {i}" for i in range(5))
    text = frame(snapshot(failures=failures, recent=recent, stopping="Ctrl-C: finishing in-flight calls"), width=80)
    lines = text.splitlines()
    assert [line for line in lines if "boom 0" in line] == []  # the last three failures only
    assert sum("✗ sim: trace of m failed" in line for line in lines) == 3
    assert all(line.endswith("… │") for line in lines if "boom" in line)  # cut, not wrapped
    assert "event 2" not in text and "· event 3" in text and "· event 4" in text
    assert "eta --" in text and "Ctrl-C: finishing in-flight calls" in text


@pytest.mark.parametrize("width", [40, 60, 80, 100, 160])
def test_dashboard_fits_any_width_without_wrapping(width: int) -> None:
    snap = snapshot(usd_cap=5.0, usd_estimate=0.15, usd_earlier=0.01, jobs_skipped=10, recent=("r" * 300,))
    lines = frame(snap, width=width).splitlines()
    assert all(len(line) <= width for line in lines)
    # one line per lane: each row starts with the lane's name and holds its figures
    assert sum(line.lstrip("│ ").startswith("sim ") for line in lines) == 1
    assert sum(line.lstrip("│ ").startswith("openai ") for line in lines) == 1
    assert any("40/120 jobs (33%)" in line and "eta 2m24s" in line for line in lines)  # the bar gives way


def test_lane_columns_give_way_by_priority() -> None:
    def headers(width: int) -> list[str]:
        c = Console(file=io.StringIO(), width=200, color_system=None)
        c.print(lanes_table((SIM, OPENAI), width))
        return re.split(r"\s{2,}", output(c).splitlines()[0].strip())

    assert headers(200) == [column.header for column in LANE_COLUMNS]
    assert headers(60) == ["lane", "in flight", "req/min", "tok/min", "waiting for", "429s"]
    assert headers(40) == ["lane", "in flight", "waiting for"]
    assert headers(30) == ["lane", "in flight"]


def test_dashboard_colours_limits_near_their_cap() -> None:
    raw = frame(snapshot(), color=True)
    assert re.search(r"\x1b\[1;31m\s*95%", raw)  # 95 % of TPM: bold red
    assert re.search(r"\x1b\[33m\s*72%", raw)  # 72 % of RPM: yellow


def test_dashboard_finished_and_empty_sweeps() -> None:
    done = frame(snapshot(jobs_done=120))
    assert "✓" in done and "eta 0s" in done
    assert "11.3k tok/s avg" in done  # 812,345 tokens over 72 s, not the decaying recent window
    assert "0/0 jobs" in frame(snapshot(jobs_total=0, jobs_done=0, lanes=()))


def test_the_dashboard_draws_at_once_then_wipes_a_frame_of_preparation_only() -> None:
    c = console(terminal=True, width=80)
    board = LiveDashboard(c, "demo")
    board.start()
    assert "anytime demo" in output(c) and "starting…" in output(c)  # drawn by start, no refresh needed
    board.phase("estimating the cost")
    board.refresh()
    assert "estimating the cost…" in output(c)
    board.stop()
    assert output(c).endswith("\x1b[2K") or "╭" not in output(c).rsplit("\n", 3)[-1]


def test_the_dashboard_shows_the_run_once_attached() -> None:
    c = console(terminal=True, width=100)
    with shown(LiveDashboard(c, "demo")) as board:
        board.print("Estimate: up to 720 calls")
        board.attach(lambda: snapshot())
        board.refresh()
    text = output(c)
    assert "Estimate: up to 720 calls" in text
    assert "40/120 jobs" in text[text.rindex("╭") :]  # the last frame stays on screen


@pytest.mark.parametrize(
    ("terminal", "mode", "kind"),
    [
        (True, "auto", LiveDashboard),
        (False, "auto", LineLog),
        (True, "plain", LineLog),
        (False, "live", LiveDashboard),
        (True, "json", JsonLines),
        (True, "quiet", Quiet),
    ],
)
def test_make_display_picks_by_terminal_and_mode(terminal: bool, mode: str, kind: type) -> None:
    display = make_display(console(terminal=terminal), "demo", mode)  # type: ignore[arg-type]
    assert isinstance(display, kind)
    assert display.interval == {LiveDashboard: 0.25, LineLog: 0.25, JsonLines: 1.0, Quiet: 3600.0}[kind]
    if isinstance(display, LineLog):
        assert display.every == 5.0  # a line every 5 s; it looks every 0.25 s for a stop or a failure


def test_json_progress_is_one_object_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    display = JsonLines(out)
    with shown(display):
        display.phase("estimating the cost")
        display.print("human text goes elsewhere")
        display.attach(lambda: snapshot(usd_earlier=0.01))
        display.refresh()
    events = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["phase", "progress", "progress"]
    assert events[1]["jobs_done"] == 40 and events[1]["eta_s"] == 144.0 and events[1]["usd_earlier"] == 0.01
    assert events[1]["lanes"][0]["waiting_for"] == "retry-after"
    assert capsys.readouterr().out == ""


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with shown(Quiet()) as display:
        display.phase("estimating")
        display.print("Estimate")
        display.attach(snapshot)
        display.refresh()
    assert capsys.readouterr() == ("", "")


def counting_source(after: int, event: anyio.Event) -> Callable[[], RunSnapshot]:
    calls = 0

    def get() -> RunSnapshot:
        nonlocal calls
        calls += 1
        if calls >= after:
            event.set()
        return snapshot(jobs_done=min(calls, 120))

    return get


def line_log(c: Console, interval: float) -> Display:
    log = LineLog(c, "demo", interval=interval)
    log.start()
    return log


async def test_open_display_refreshes_until_the_block_ends() -> None:
    c = console(terminal=False)
    refreshed = anyio.Event()
    display = line_log(c, 0.001)
    with anyio.fail_after(5):
        async with open_display(display, counting_source(3, refreshed)):
            await refreshed.wait()
    lines = output(c).splitlines()
    assert len(lines) >= 3  # the first at once, then periodic ones
    assert lines[-1].startswith(f"[{stamp(1072.0)}] jobs ")


async def test_open_display_hands_back_the_bodys_error_unwrapped() -> None:
    c = console(terminal=True)
    with pytest.raises(KeyError):  # no ExceptionGroup leaks out of the display
        async with open_display(line_log(c, 3600), snapshot):
            raise KeyError("boom")


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
        async with open_display(line_log(c, 0.001), flaky):
            await healthy.wait()
    err = capsys.readouterr().err
    assert err.count("progress display (LineLog) failed, run continues") == 1
    assert "RuntimeError: lane table changed size" in err
    assert "] jobs 40/120" in output(c)


@pytest.mark.parametrize("terminal", [True, False])
def test_a_failing_final_frame_does_not_mask_the_outcome(terminal: bool, capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> RunSnapshot:
        raise RuntimeError("no snapshot")

    c = console(terminal=terminal)
    with pytest.raises(KeyError), shown(make_display(c, "demo")) as display:
        display.attach(broken)
        raise KeyError("the real error")
    assert "RuntimeError: no snapshot" in capsys.readouterr().err
