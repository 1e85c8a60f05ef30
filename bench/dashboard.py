"""What the live dashboard costs: CPU at 2,000 concurrent streams, and the time to its first frame.

(a) CPU. One sweep of 2,000 jobs (``sim-reasoner-large`` on AIME, cut at 64/128/256 tokens) runs
against the simulator in its own process (``anytime sim``, no rate limits), with 2,000 workers,
so 2,000 streams are open at once. Each sweep runs in a fresh client process, side by side:

- ``dashboard`` (ours): `runner.ui.dashboard.LiveDashboard` drawing the whole panel to a terminal
  console (``/dev/null``, 120 columns, colours on) every 0.25 s, as `anytime run` does;
- ``none`` (the baseline): the same sweep with no display at all (`runner.engine.sweep.no_display`).

Figures: the client's CPU seconds (user + system) for the sweep, the dashboard's extra CPU as a share
of the baseline's, and, measured inside the dashboard run, the CPU time of each refresh (snapshot,
ETA and rendering) and how many there were. Medians over ``--repeat`` pairs, run alternately.

(b) First frame. ``anytime run manifests/demo.toml --yes`` on a pseudo-terminal: seconds from the
spawn to the first byte of the panel, against the same interpreter printing ``anytime --version``
(the floor: starting Python and the package's entry point).

Usage: ``python bench/dashboard.py [--streams 2000 --repeat 3]``. The last line holds
``streams=``, ``cpu_s_dashboard=``, ``cpu_s_none=``, ``overhead_pct=``, ``refresh_ms=``,
``refreshes=``, ``first_frame_s=`` and ``version_s=`` as ``name=value`` pairs.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import pty  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator, Callable  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "aime_2024.jsonl"

MANIFEST = """
[run]
name = "bench"
seed = 1
ledger_dir = "{ledgers}"
confirm_above_usd = 1000.0

[providers.sim]
kind = "sim"
base_url = "{base_url}"
max_concurrency = {streams}
max_attempts = 2

[models.reasoner]
provider = "sim"
model = "sim-reasoner-large"
price = {{ input = 1.0, output = 2.0 }}

[datasets.aime24]
kind = "aime"
path = "{data}"

[sweep]
budgets = [64, 128, 256]
samples = {samples}
"""


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_sweep(which: str, base_url: str, streams: int) -> dict[str, float]:
    """One sweep in this process, with the dashboard or without a display; its own figures."""
    import anyio
    from rich.console import Console

    from runner.config.manifest import load_manifest
    from runner.engine.snapshots import RunSnapshot
    from runner.engine.sweep import Sweep, SweepOptions, no_display
    from runner.tokens.encodings import get_encoding
    from runner.ui.dashboard import LiveDashboard
    from runner.ui.display import open_display

    get_encoding("o200k_base")  # the rank files load before the measured part
    samples = -(-streams // 30)  # 30 problems
    with tempfile.TemporaryDirectory(prefix="anytime-dash-") as tmp:
        path = Path(tmp) / "m.toml"
        text = MANIFEST.format(ledgers=tmp, base_url=base_url, streams=streams, data=DATA, samples=samples)
        path.write_text(text)
        sweep = Sweep(load_manifest(path), SweepOptions())
        refresh_cpu: list[float] = []
        devnull = open(os.devnull, "w")  # closed below, after the sweep
        console = Console(file=devnull, force_terminal=True, width=120, color_system="truecolor")
        board = LiveDashboard(console, "bench")

        @contextlib.asynccontextmanager
        async def measured(get: Callable[[], RunSnapshot]) -> AsyncIterator[object]:
            refresh = board.refresh

            def timed() -> None:
                start = time.thread_time()
                refresh()
                refresh_cpu.append(time.thread_time() - start)

            board.refresh = timed  # type: ignore[method-assign]
            async with open_display(board, get) as shown:
                yield shown

        display = measured if which == "dashboard" else no_display
        if which == "dashboard":
            board.start()
        cpu0, wall0 = cpu_s(), time.perf_counter()
        outcome = anyio.run(sweep.run, display, backend_options=_loop())
        cpu, wall = cpu_s() - cpu0, time.perf_counter() - wall0
        if which == "dashboard":
            board.stop()
        devnull.close()
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "jobs": outcome.jobs_run,
        "failed": outcome.jobs_failed,
        "refreshes": len(refresh_cpu),
        "refresh_ms": statistics.median(refresh_cpu) * 1e3 if refresh_cpu else 0.0,
        "refresh_cpu_s": sum(refresh_cpu),
    }


def _loop() -> dict[str, bool]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def first_frame_s(argv: list[str], marker: bytes, cwd: Path) -> float:
    """Seconds from spawning ``argv`` on a pseudo-terminal to ``marker`` on its screen."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, cwd=cwd, env=env)
    os.close(follower)
    seen, elapsed = b"", float("nan")
    try:
        while time.perf_counter() - start < 60:
            ready, _, _ = select.select([leader], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
                if marker in seen:
                    elapsed = time.perf_counter() - start
                    break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: nothing has been spent yet
        end = time.perf_counter() + 30
        while proc.poll() is None and time.perf_counter() < end:  # read on: a full terminal blocks it
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(leader)
    return elapsed


def first_frames(repeat: int) -> tuple[float, float]:
    """Medians of the time to the first frame of `anytime run` and to `anytime --version`'s output."""
    anytime = [sys.executable, "-m", "runner.cli"]
    frames, versions = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="anytime-dash-") as tmp:
            text = (REPO / "manifests" / "demo.toml").read_text()
            text = text.replace('"../ledgers"', json.dumps(tmp)).replace(
                '"../data/', json.dumps(str(REPO / "data") + "/")[:-1]
            )
            (Path(tmp) / "demo.toml").write_text(text)
            frames.append(first_frame_s([*anytime, "run", str(Path(tmp) / "demo.toml"), "--yes"], "╭─".encode(), REPO))
        versions.append(first_frame_s([*anytime, "--version"], b"anytime-runner", REPO))
    return statistics.median(frames), statistics.median(versions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.2, help="the simulator's (1 = real speed)")
    parser.add_argument("--first-frame-only", action="store_true", help="measure only (b)")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run one sweep here
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(run_sweep(args.client, args.base_url, args.streams)), flush=True)
        return 0

    if args.first_frame_only:
        frame, version = first_frames(args.repeat)
        print(f"first frame of `anytime run` on a terminal: {frame:.2f} s (`anytime --version`: {version:.2f} s)")
        print(f"first_frame_s={frame:.2f} version_s={version:.2f}")
        return 0
    from throughput import SimProcess

    print(f"# {args.streams} streams, simulator time scale {args.time_scale}, {args.repeat} pairs", flush=True)
    results: dict[str, list[dict[str, float]]] = {"dashboard": [], "none": []}
    with SimProcess("--time-scale", str(args.time_scale), "--chunk-tokens", "4", "--data", f"{DATA}:aime") as sim:
        for i in range(args.repeat):
            for which in ("dashboard", "none") if i % 2 == 0 else ("none", "dashboard"):
                argv = [sys.executable, __file__, "--client", which, "--base-url", sim.base_url]
                out = subprocess.run(
                    [*argv, "--streams", str(args.streams)], capture_output=True, text=True, check=False
                )
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[which].append(r)
                line = f"{which:9s} jobs {r['jobs']} (failed {r['failed']})  wall {r['wall_s']:.1f} s"
                line += f"  cpu {r['cpu_s']:.2f} s"
                if which == "dashboard":
                    line += f"  {r['refreshes']} refreshes, {r['refresh_ms']:.1f} ms each"
                print(line, flush=True)
    ours, base = results["dashboard"], results["none"]
    cpu_ours, cpu_base = statistics.median(r["cpu_s"] for r in ours), statistics.median(r["cpu_s"] for r in base)
    frame, version = first_frames(args.repeat)
    print(f"first frame of `anytime run` on a terminal: {frame:.2f} s (`anytime --version`: {version:.2f} s)")
    fields = {
        "streams": args.streams,
        "cpu_s_dashboard": round(cpu_ours, 2),
        "cpu_s_none": round(cpu_base, 2),
        "overhead_pct": round(100 * (cpu_ours - cpu_base) / cpu_base, 1),
        "refresh_ms": round(statistics.median(r["refresh_ms"] for r in ours), 2),
        "refreshes": round(statistics.median(r["refreshes"] for r in ours)),
        "refresh_share_pct": round(100 * statistics.median(r["refresh_cpu_s"] / r["cpu_s"] for r in ours), 2),
        "first_frame_s": round(frame, 2),
        "version_s": round(version, 2),
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
