"""`anytime run` in a real terminal, read as a person reads it.

tmux runs the command at 80 and at 160 columns (both at once, each with its own simulator);
the screen is captured several times while it runs. The simulator allows fewer requests a
minute than the sweep makes, so the lane must wait, and the screen must say why. Then Ctrl-C
stops the run and the report of what finished is printed. Checked on the screen, as text:

- the panel is drawn within the first captures, and every line of it is one terminal line
  (a line that wrapped would not end on the panel's border);
- no request or token window reads as over its limit (``624/400``): those columns show shares
  of the window in use, never above 100%;
- a wait reason shows in the lanes table while the simulator throttles;
- the report's tables keep each row on one line at either width.

Needs tmux (`.ci/run` installs it); skipped without it unless ANYTIME_REQUIRE_TMUX=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, write_manifest

if shutil.which("tmux") is None:
    if os.environ.get("ANYTIME_REQUIRE_TMUX") == "1":
        raise RuntimeError("tmux is not installed: apt-get install -y tmux (.ci/run does)")
    pytest.skip("tmux is not installed (apt-get install -y tmux)", allow_module_level=True)

THROTTLED = """
[run]
name = "t"
seed = 5
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = 8

[models.reasoner]
provider = "sim"
model = "sim-reasoner-large"

[models.cot]
provider = "sim"
model = "sim-cot-small"

[datasets.aime24]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 12

[sweep]
budgets = [64, 128, 256]

[simulator]
rpm = 120               # fewer than the sweep's calls: the lane has to wait for the window
time_scale = 0.05
chunk_tokens = 8
"""

WAIT_REASONS = ("requests/min", "tokens/min", "retry-after")
FRACTION = re.compile(r"\b(\d+)/(\d+)\b")
JOBS_DONE = re.compile(r"\b[1-9]\d*/\d+ jobs")


@dataclass
class Screen:
    """A tmux session running one command at a fixed size, on its own tmux server."""

    width: int
    socket: str
    captures: list[str] = field(default_factory=list)

    def tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True)
        return out.stdout

    def start(self, command: str) -> None:
        self.tmux(
            "new-session", "-d", "-x", str(self.width), "-y", "40", "-s", "t", f"{command}; echo EXIT=$?; sleep 60"
        )

    def capture(self) -> str:
        screen = self.tmux("capture-pane", "-p", "-t", "t")
        self.captures.append(screen)
        return screen

    def history(self) -> str:
        return self.tmux("capture-pane", "-p", "-S", "-", "-t", "t")

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


def panel(screen: str) -> list[str]:
    """The lines of the last dashboard panel on a screen (top border to bottom border)."""
    lines = screen.splitlines()
    tops = [i for i, line in enumerate(lines) if line.startswith("╭─ anytime")]
    if not tops:
        return []
    bottom = next((i for i in range(tops[-1], len(lines)) if lines[i].startswith("╰")), len(lines) - 1)
    return lines[tops[-1] : bottom + 1]


def check_panel(lines: list[str], width: int) -> None:
    """Every line of the panel is one terminal line of it, and no window reads as over its limit."""
    assert lines[-1].startswith("╰"), "\n".join(lines)
    for line in lines[1:-1]:
        assert line.startswith("│") and line.rstrip().endswith("│"), f"a wrapped line at {width} columns: {line!r}"
        assert len(line.rstrip()) <= width
    header = next((line for line in lines if " lane " in line), None)
    if header is None:
        return  # still preparing: no lanes yet
    assert "req/min" in header and "tok/min" in header
    for line in lines:
        for percent in re.findall(r"(\d+)%", line):
            assert int(percent) <= 100, line
    row = next(line for line in lines if line.startswith("│ sim "))
    # the only fraction in a lane's row is its calls in flight over those allowed
    assert len(FRACTION.findall(row)) == 1, row


def check_report(history: str, width: int) -> None:
    """The report's tables at this width: each row of each table on one line."""
    lines = history.splitlines()
    assert any("quality x100 per budget" in line for line in lines), history[-3000:]
    rules = [i for i, line in enumerate(lines) if line.startswith("━")]
    assert len(rules) >= 2, history[-3000:]  # the quality table and the cost table
    for rule in rules:
        rows = []
        for line in lines[rule + 1 :]:
            if not line.strip() or line.startswith(("left out", "t · ", "120 jobs", "demo")) or "jobs done;" in line:
                break
            rows.append(line)
        # one line per model with finished jobs, each starting with its name: a wrapped cell
        # would add lines that start otherwise, or a second line for a model
        names = [row.split()[0] for row in rows]
        assert names and set(names) <= {"cot", "reasoner"} and len(set(names)) == len(names), (width, rows)
        assert all(len(row) <= width for row in rows)


def test_anytime_run_reads_right_in_a_terminal_at_80_and_160_columns(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, THROTTLED)
    command = f"cd {REPO} && {sys.executable} -m runner.cli run {manifest} --yes --new-run --grace 1"
    screens = [Screen(width, f"anytime-test-{os.getpid()}-{width}") for width in (80, 160)]
    try:
        for screen in screens:
            screen.start(command)
        waited = {screen.width: False for screen in screens}
        done = {screen.width: False for screen in screens}  # a job done: the report has a row
        deadline = time.monotonic() + 40
        while not (all(waited.values()) and all(done.values())) and time.monotonic() < deadline:
            time.sleep(0.4)
            for screen in screens:
                lines = panel(screen.capture())
                if lines:
                    check_panel(lines, screen.width)
                    waited[screen.width] |= any(reason in line for line in lines for reason in WAIT_REASONS)
                    done[screen.width] |= any(JOBS_DONE.search(line) for line in lines)
        assert all(waited.values()), f"no wait reason shown while the simulator throttled: {waited}"
        for screen in screens:
            assert any(panel(c) for c in screen.captures[:5]), "the dashboard was not drawn in the first captures"
            screen.tmux("send-keys", "-t", "t", "C-c")
        for screen in screens:
            while "EXIT=" not in screen.capture() and time.monotonic() < deadline + 30:
                time.sleep(0.3)
            history = screen.history()
            assert "EXIT=130" in history, history[-2000:]  # interrupted, by the one exit-code table
            check_panel(panel(history), screen.width)  # the last frame stays whole
            check_report(history, screen.width)
    finally:
        for screen in screens:
            screen.stop()
