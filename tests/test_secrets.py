"""Secrets (#12, reliability suite): with API keys in the environment, no key appears in any file of
the run folder, any byte the CLI prints, or any error message.

Real sweeps run on the simulator through every protocol it speaks, each provider with its own
distinctive fake key sent over a real loopback socket (``http://`` URLs, so the keys are really
used: a ``sim://`` provider would get a stand-in). The simulator injects 5xx answers, cut streams
and malformed chunks, and a second simulator refuses its provider's key with a 401 that quotes the
key back (a configuration error: that lane stops). Then every file under the test's folder is
scanned, whatever its name (ledgers, reports, exports, transcripts, plots, files added later),
with every byte printed by the commands, in-process and as a real subprocess, and every exception
an adapter raises, with its causes.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from anytime_sim import SimConfig
from anytime_sim.faults import FaultRates
from runner.cli import main
from runner.errors import ProviderError
from runner.providers.registry import make_adapter
from runner.types import ChatRequest, Message
from tests.conftest import DATA, REPO
from tests.sim_thread import simulator_thread

# kind, model, API root on the simulator
PROTOCOLS = {
    "xai": ("xai", "sim-grok-3-mini", "/v1"),
    "openai": ("openai", "sim-o4-mini", "/v1"),
    "responses": ("openai_responses", "sim-gpt-4.1", "/v1"),
    "anthropic": ("anthropic", "sim-claude-sonnet-4", "/v1"),
    "gemini": ("gemini", "sim-gemini-2.5-flash", "/v1beta"),
    "deepseek": ("deepseek", "sim-deepseek-reasoner", "/v1"),
    "compatible": ("openai_compatible", "sim-gpt-oss-20b", "/v1"),
    "together": ("together", "sim-deepseek-r1-together", "/v1"),
    "openrouter": ("openrouter", "sim-gpt-4o", "/v1"),
    "llamacpp": ("llamacpp", "sim-smollm2", "/v1"),
}
# a unique token in each key: found anywhere, even a fragment of a key has leaked
KEYS = {name: f"sk-test-{name}-7f3a9c{i:02d}e1b5d04c2f86" for i, name in enumerate([*PROTOCOLS, "refused"])}
SECRETS = [key.split("-")[-1] for key in KEYS.values()]


def variable(name: str) -> str:
    return f"ANYTIME_SECRETS_{name.upper()}_KEY"


# the providers served by the simulator that injects faults (the others go to a clean one: retries
# back off for seconds, and two protocols are enough to put failed attempts in the ledger)
FAULTY = ("xai", "anthropic", "gemini")


def manifest(tmp_path: Path, url: str, faulty_url: str, refusing_url: str) -> Path:
    lines = [
        "[run]",
        'name = "secrets"',
        f'ledger_dir = "{tmp_path / "ledgers"}"',
        "seed = 4",
    ]
    for name, (kind, model, root) in PROTOCOLS.items():
        lines += [
            f"[providers.{name}]",
            f'kind = "{kind}"',
            f'base_url = "{faulty_url if name in FAULTY else url}{root}"',
            f'api_key_env = "{variable(name)}"',
            "max_attempts = 8",
            f"[models.{name}]",
            f'provider = "{name}"',
            f'model = "{model}"',
        ]
    lines += [
        "[providers.refused]",
        'kind = "openai"',
        f'base_url = "{refusing_url}/v1"',
        f'api_key_env = "{variable("refused")}"',
        "[models.refused]",
        'provider = "refused"',
        'model = "sim-gpt-4.1"',
        "[datasets.aime]",
        'kind = "aime"',
        f'path = "{DATA / "aime_2024.jsonl"}"',
        "limit = 1",
        "[sweep]",
        "budgets = [64, 128]",
        "[simulator]",
        "time_scale = 0",
    ]
    path = tmp_path / "secrets.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Printed:
    """Every byte the commands printed."""

    chunks: list[str]

    def add(self, *texts: str) -> None:
        self.chunks.extend(texts)


def cli(printed: Printed, *args: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    printed.add(out.getvalue(), err.getvalue())
    return code


def assert_no_secret(where: str, data: bytes | str) -> None:
    blob = data.encode("utf-8", "replace") if isinstance(data, str) else data
    for secret in SECRETS:
        assert secret.encode() not in blob, f"a key ({secret}) leaked into {where}"


def every_file(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file())


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {variable(name): key for name, key in KEYS.items()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_no_key_in_any_file_output_or_error(tmp_path: Path, keys: dict[str, str]) -> None:
    # faults are drawn per request body: rates at which each kind strikes these few requests (0.1 of
    # 5xx drew none once the forced-answer prompt changed)
    faults = FaultRates(error_5xx=0.2, drop_mid_stream=0.15, malformed_chunk=0.15)
    datasets = [("aime", DATA / "aime_2024.jsonl")]
    printed = Printed([])
    with (
        simulator_thread(SimConfig(time_scale=0), datasets) as sim,
        simulator_thread(SimConfig(time_scale=0, faults=faults), datasets) as faulty,
        simulator_thread(SimConfig(time_scale=0, modes=("bad_key",)), datasets) as refusing,
    ):
        path = manifest(tmp_path, sim.base_url, faulty.base_url, refusing.base_url)
        run_dir = tmp_path / "ledgers" / "secrets"
        # the sweep as a user's shell runs it: a real process, every byte it prints
        done = subprocess.run(
            [sys.executable, "-m", "runner.cli", "run", str(path), "--yes", "--plain", "--no-report"],
            capture_output=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert_no_secret("the run's stdout", done.stdout)
        assert_no_secret("the run's stderr", done.stderr)
        assert done.returncode == 2, done.stderr.decode()  # the refused key stopped its lane
        assert b"providers.refused" in done.stderr and b"Incorrect API key provided" in done.stderr
        errors = (run_dir / "ledger.jsonl").read_text()
        assert '"error_class":"server"' in errors and '"error_class":"stream_broken"' in errors  # faults struck
        # every other command a user may run on it, in-process
        assert cli(printed, "run", str(path), "--yes", "--plain", "--no-report") == 2  # a resume: it stops again
        assert cli(printed, "validate", str(path)) == 0
        assert cli(printed, "estimate", str(path)) == 0
        assert cli(printed, "doctor", str(path), "--live", "--json") == 1  # the refused provider fails
        assert cli(printed, "report", str(run_dir)) == 0  # prints the report and writes its files
        assert cli(printed, "ledger", "summary", str(run_dir), "--json") == 0
        assert cli(printed, "ledger", "export", str(run_dir), "--csv") == 0
        snapshots = str(run_dir / "s.csv")  # an export written into the run folder is scanned too
        assert cli(printed, "ledger", "export", str(run_dir), "--csv", "--snapshots", "--out", snapshots) == 0
        assert cli(printed, "ledger", "verify", str(run_dir)) == 0
        assert cli(printed, "export", str(run_dir), "--format", "jsonl") == 0  # written into the run folder
    os.environ.pop(variable("xai"))  # a configuration error: a key variable missing
    assert cli(printed, "validate", str(path)) == 2
    assert variable("xai") in printed.chunks[-1]
    for i, text in enumerate(printed.chunks):
        assert_no_secret(f"printed text #{i}", text)
    files = list(every_file(tmp_path))
    assert {"ledger.jsonl", "transcripts.jsonl.gz", "report.json", "report.md", "s.csv"} <= {p.name for p in files}
    for file in files:
        data = file.read_bytes()
        # the transcripts hold every prompt and streamed text: scanned as they read, not as gzip bytes
        assert_no_secret(str(file.relative_to(tmp_path)), gzip.decompress(data) if file.suffix == ".gz" else data)


async def _refused_calls(url: str) -> list[BaseException]:
    """One call per protocol against a server that refuses the key and quotes it back, and one
    against a port where nothing listens: the errors the adapters raise."""
    caught: list[BaseException] = []
    request = ChatRequest(model="sim-gpt-4.1", messages=(Message("user", "q"),), max_output_tokens=16)
    async with aiohttp.ClientSession() as session:
        for name, (kind, _model, root) in PROTOCOLS.items():
            for base in (url + root, "http://127.0.0.1:9" + root):
                adapter = make_adapter(name, _Kind(kind), base, KEYS[name])
                try:
                    async with adapter.stream(session, request) as resp:
                        async for _event in resp.events:
                            pass
                except ProviderError as exc:
                    caught.append(exc)
    return caught


@dataclass(frozen=True)
class _Kind:
    kind: str
    reasoning_field: str | None = None


def test_no_key_in_an_adapter_error_or_its_causes() -> None:
    with simulator_thread(SimConfig(time_scale=0, modes=("bad_key",))) as refusing:
        errors = asyncio.run(_refused_calls(refusing.base_url))
    assert len(errors) == 2 * len(PROTOCOLS)
    quoted = [e for e in errors if "Incorrect API key provided" in str(e)]
    assert len(quoted) == len(PROTOCOLS)  # every protocol got the key quoted back, and scrubbed it
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            assert_no_secret(f"{type(chain).__name__}: {chain}", f"{chain} {chain!r} {chain.args!r}")
            chain = chain.__cause__ or chain.__context__
