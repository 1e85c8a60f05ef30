"""For the viewer's tests: small finished simulator runs, the `anytime view` command as a real
subprocess on loopback, and a headless Chromium driven over WebDriver (selenium).

The browser is Debian's ``chromium`` with its ``chromium-driver`` (`.ci/run` installs both);
`browser_missing` says why a test must skip when neither can be found.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.cli import main as cli_main
from tests.conftest import DATA, REPO

# two models, one dataset, three budgets, one sample: seconds on the simulator; run A meets some
# 5xx answers (retries and failed attempts for the "failed calls" filter)
RUN_MANIFEST = """
[run]
name = "{name}"
seed = {seed}
ledger_dir = "{ledgers}"
confirm_above_usd = 100.0

[providers.sim]
kind = "sim"
max_concurrency = {concurrency}
max_attempts = 6

[models.reasoner]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7

[models.cot]
provider = "sim"
model = "sim-cot-small"
temperature = 0.7

[datasets.aime24]
kind = "aime"
path = "{data}/aime_2024.jsonl"
limit = {limit}

[methods.cot]
kind = "cot"

[sweep]
budgets = {budgets}
samples = 1
{models}

[simulator]
time_scale = {time_scale}
chunk_tokens = 16
faults = {{ error_5xx = {error_5xx} }}
"""
BUDGETS = [256, 512, 1024]


def write_run_manifest(folder: Path, name: str, **values: Any) -> Path:
    fields = {
        "seed": 7,
        "limit": 12,
        "time_scale": 0.001,
        "error_5xx": 0.0,
        "concurrency": 16,
        "models": "",
        "budgets": BUDGETS,
    }
    fields.update(values)
    path = folder / f"{name}.toml"
    path.write_text(RUN_MANIFEST.format(name=name, ledgers=folder / "ledgers", data=DATA, **fields))
    return path


def run_finished(folder: Path, name: str, **values: Any) -> Path:
    """Run a small sweep to the end in this process; its run folder."""
    manifest = write_run_manifest(folder, name, **values)
    assert cli_main(["run", str(manifest), "--yes", "--plain"]) == 0
    return folder / "ledgers" / name


class Viewer:
    """`anytime view` running as a subprocess; its URL, and what it printed when stopped."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DISPLAY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner.cli", "view", "--no-browser", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert first.startswith("anytime view: http://127.0.0.1:"), first + self._stderr_now()
        self.url = first.split()[2]
        self.stderr = ""

    def _stderr_now(self) -> str:
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return ""
        return self.process.stderr.read() if self.process.stderr else ""

    def get(self, path: str) -> tuple[int, Any]:
        """GET a path over loopback: (HTTP status, decoded JSON or text)."""
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=30) as response:
                status, body, kind = response.status, response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), exc.headers.get_content_type()
        return status, json.loads(body) if kind == "application/json" else body.decode()

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit code (stderr kept in ``self.stderr``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        _, self.stderr = self.process.communicate(timeout=20)
        return self.process.returncode


@contextmanager
def open_viewer(args: list[str]) -> Iterator[Viewer]:
    viewer = Viewer(args)
    try:
        yield viewer
    finally:
        if viewer.process.poll() is None:
            viewer.stop()


CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def _which(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


def browser_missing() -> str | None:
    """Why no browser test can run here (None: they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _which(CHROMIUM) is None:
        return "no Chromium here (apt-get install chromium chromium-driver; .ci/run does)"
    if _which(DRIVER) is None:
        return "no chromedriver here (apt-get install chromium-driver; .ci/run does)"
    return None


@contextmanager
def open_chromium() -> Iterator[Any]:
    """A headless Chromium with a new empty profile, driven by selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="anytime-view-chromium-")
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = _which(CHROMIUM) or ""
    driver = webdriver.Chrome(options=options, service=Service(_which(DRIVER) or ""))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
