"""The simulator: one aiohttp app on loopback serving every dialect, with limits, faults and stats.

Each dialect module parses its request into a `GenRequest` and calls `Simulator.admit`, which
runs what every protocol shares (model lookup, rate limits, before-stream faults, generation)
and returns a `Call`; the dialect then writes the response and ends the call in a ``finally``,
so a disconnected client is accounted exactly for the tokens it was sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from anytime_sim.cache import PromptCache
from anytime_sim.faults import BEFORE_STREAM, FaultPlan, parse_modes, plan_fault
from anytime_sim.knowledge import ProblemIndex, open_index
from anytime_sim.models import SimConfig, SimModel
from anytime_sim.ratelimit import Admission, RateLimiter, key_digest
from anytime_sim.stats import ModelStats, SimStats
from anytime_sim.stream import Pacer, Plan, plan
from anytime_sim.trace import Generation, GenRequest, TraceModel

# profiles whose provider caches prompt prefixes on its own and reports it in usage
AUTO_CACHE_PROFILES = ("openai", "openai_hidden", "xai", "deepseek", "gemini")


class Reject(Exception):
    """A request answered with an error before any stream (the response is ready to send)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class ContextOverflow(Reject):
    """The prompt alone fills the model's context window."""


class Call:
    """One admitted request: what it will generate and what it has served so far."""

    def __init__(
        self,
        sim: Simulator,
        model: SimModel,
        req: GenRequest,
        generation: Generation,
        prompt_tokens: int,
        cap: int | None,
        api_key: str,
        modes: frozenset[str],
        fault: FaultPlan,
        admission: Admission,
        fingerprint: str,
    ) -> None:
        self.sim, self.model, self.req, self.generation = sim, model, req, generation
        self.prompt_tokens, self.cap, self.api_key, self.modes = prompt_tokens, cap, api_key, modes
        self.fault, self.admission = fault, admission
        self.plan: Plan = plan(generation, cap)
        self.rng = random.Random(fingerprint)
        self.id = hashlib.blake2b(fingerprint.encode(), digest_size=12).hexdigest()
        self.created = int(time.time())
        self.served_reasoning = 0
        self.served_content = 0
        # prompt-cache facts for usage: automatic hits, and Anthropic's explicit reads / writes
        self.cached_tokens = 0
        self.cache_write_tokens = 0
        self.interrupted = False
        self.charged = prompt_tokens + (cap if cap is not None else self.plan.output_tokens)
        self.pacer = Pacer(model.ttft_s, model.tokens_per_s, sim.config.time_scale)
        self._ended = False

    @property
    def stats(self) -> ModelStats:
        return self.sim._model_stats(self.model.name)

    def served(self, kind: str, tokens: int) -> None:
        if kind == "content":
            self.served_content += tokens
        else:
            self.served_reasoning += tokens

    def end(self, completed: bool) -> None:
        """Account the call once: served tokens, refund of the unused cap, completion."""
        if self._ended:
            return
        self._ended = True
        stats = self.stats
        stats.output_tokens += self.served_reasoning + self.served_content
        stats.reasoning_tokens += self.served_reasoning
        stats.completed += int(completed)
        stats.disconnected += int(not completed)
        self.sim._leave()
        self.sim._interruptible.get(self.model.name, set()).discard(self)
        used = self.prompt_tokens + self.served_reasoning + self.served_content
        self.sim.limiter.refund(self.api_key, self.charged - used)


class Simulator:
    """The running simulator. Use `open_simulator` to start one.

    Attributes:
        base_url: e.g. ``http://127.0.0.1:43121`` (dialect paths hang off it: ``/v1/...``).
    """

    def __init__(self, config: SimConfig, index: ProblemIndex, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.index = index
        self.logic = TraceModel(index)
        self.limiter = RateLimiter(config.rpm, config.tpm, clock)
        self.cache = PromptCache()
        self.base_url = ""
        self.in_flight = 0
        self.peak_in_flight = 0
        self._stats: dict[str, ModelStats] = {}
        self._attempts: dict[str, int] = {}
        # per model, the streams that the next request for the model stops (mode "interrupt")
        self._interruptible: dict[str, set[Call]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        from anytime_sim import anthropic, gemini, openai_chat, openai_responses

        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[_client_gone])
        app[SIM_KEY] = self
        app.router.add_post("/v1/chat/completions", openai_chat.handle)
        app.router.add_post("/v1/responses", openai_responses.handle)
        app.router.add_post("/v1/messages", anthropic.handle)
        app.router.add_post("/v1beta/models/{target}", gemini.handle)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/sim/stats", self._stats_handler)
        return app

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "owned_by": "anytime-sim"} for name in self.config.models]
        return web.json_response({"object": "list", "data": data})

    async def _stats_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    def _leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no call is in flight (every handler has accounted its tokens)."""
        await self._idle.wait()

    def _model_stats(self, name: str) -> ModelStats:
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = ModelStats()
        return stats

    def stats(self) -> SimStats:
        """A snapshot of the counters, per model."""
        models = {name: msgspec.structs.replace(s, faults=dict(s.faults)) for name, s in self._stats.items()}
        return SimStats(models=models, in_flight=self.in_flight, peak_in_flight=self.peak_in_flight)

    def _attempt(self, request: web.Request, fingerprint: str) -> int:
        for header in ("x-sim-attempt", "x-stainless-retry-count"):
            value = request.headers.get(header)
            if value is not None and value.isdigit():
                return int(value)
        # without a client-side attempt number, identical requests count as retries of each other
        seen = self._attempts.get(fingerprint, 0)
        self._attempts[fingerprint] = seen + 1
        if len(self._attempts) > 200_000:
            self._attempts.clear()
        return seen

    async def admit(
        self,
        request: web.Request,
        req: GenRequest,
        cap: int | None,
        body: bytes,
        errors: ErrorFormat,
        api_key: str | None,
        caching: bool = True,
    ) -> Call:
        """Everything before the first byte: model, modes, limits, faults, generation.

        ``caching`` False turns automatic prompt caching off (Anthropic caches only on request).
        """
        model = self._model(req.model, errors)
        modes = self._modes(request, errors)
        req = _with_seed_header(request, req)
        stats = self._model_stats(model.name)
        stats.requests += 1
        key = api_key or ""
        fingerprint = hashlib.blake2b(model.name.encode() + b"\0" + body, digest_size=16).hexdigest()
        fault = plan_fault(
            self.config.faults,
            self.config.error_in_stream,
            modes,
            fingerprint,
            self._attempt(request, fingerprint),
        )
        generation = self.logic.generate(model, req)
        prompt_ids = self.logic.prompt_tokens(req.messages)
        prompt_tokens = len(prompt_ids)
        _refuse_overflow(model, prompt_tokens, cap, errors)
        cost = prompt_tokens + (cap if cap is not None else len(generation.reasoning) + len(generation.content))
        admission = await self._admission(key, cost, fault, stats, model.name, errors)
        stats.input_tokens += prompt_tokens
        cached = 0
        if caching and model.profile in AUTO_CACHE_PROFILES:
            cached = self.cache.automatic(f"{model.name}\0{key_digest(key)}", prompt_ids[:-3])
            stats.cached_input_tokens += cached
        self.in_flight += 1
        self._idle.clear()
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        call = Call(self, model, req, generation, prompt_tokens, cap, key, modes, fault, admission, fingerprint)
        call.cached_tokens = cached
        for running in self._interruptible.pop(model.name, set()):
            running.interrupted = True
        if "interrupt" in modes:
            self._interruptible.setdefault(model.name, set()).add(call)
        return call

    def _model(self, name: str, errors: ErrorFormat) -> SimModel:
        model = self.config.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.config.models))
            raise Reject(errors(404, "not_found", f"The model `{name}` does not exist (simulated: {known})", {}))
        return model

    def _modes(self, request: web.Request, errors: ErrorFormat) -> frozenset[str]:
        try:
            return parse_modes(request.headers.get("x-sim-mode"), self.config.modes)
        except ValueError as exc:
            raise Reject(errors(400, "invalid_request", str(exc), {})) from None

    async def _admission(
        self, key: str, cost: int, fault: FaultPlan, stats: ModelStats, model_name: str, errors: ErrorFormat
    ) -> Admission:
        """The rate limiter's admission, unless it refuses or a fault planned before the stream strikes.

        Raises:
            Reject: a 429 (real or injected) or an injected server error, the charge refunded.
        """
        admission = self.limiter.admit(key, cost)
        if fault.kind == "stall_first":
            stats.faults["stall_first"] = stats.faults.get("stall_first", 0) + 1
            await asyncio.sleep(fault.stall_s)
        if not admission.ok or fault.kind == "rate_limit":
            stats.rate_limited += 1
            if admission.ok:  # an injected 429: the request was never served, so it costs nothing
                self.limiter.refund(key, cost, requests=1)
            raise Reject(errors.rate_limited(model_name, admission, cost))
        if fault.kind in BEFORE_STREAM and fault.kind != "stall_first":
            stats.faults[fault.kind] = stats.faults.get(fault.kind, 0) + 1
            # the request was admitted but failed: its charge goes back, as real providers do
            self.limiter.refund(key, cost)
            headers = {} if fault.should_retry is None else {"x-should-retry": str(fault.should_retry).lower()}
            raise Reject(
                errors(
                    fault.status,
                    "server",
                    f"The simulated server had an error ({fault.kind})",
                    headers,
                    admission,
                )
            )
        if fault.kind:
            stats.faults[fault.kind] = stats.faults.get(fault.kind, 0) + 1
        return admission


def _with_seed_header(request: web.Request, req: GenRequest) -> GenRequest:
    """The request with the seed that an ``x-sim-seed`` header sets, if it sets one."""
    seed_header = request.headers.get("x-sim-seed", "")
    if seed_header.lstrip("-").isdigit():
        return msgspec.structs.replace(req, seed=int(seed_header))
    return req


def _refuse_overflow(model: SimModel, prompt_tokens: int, cap: int | None, errors: ErrorFormat) -> None:
    """Raise `ContextOverflow` when the prompt alone fills the model's context window.

    A generous output cap is not refused: its generation just ends at the window.
    """
    if prompt_tokens >= model.context_window:
        wanted = prompt_tokens + (cap or 0)
        message = (
            f"This model's maximum context length is {model.context_window} tokens. However, you "
            f"requested {wanted} tokens ({prompt_tokens} in the messages, {cap or 0} in the completion)."
        )
        raise ContextOverflow(errors(400, "context", message, {}))


SIM_KEY: web.AppKey[Simulator] = web.AppKey("sim", Simulator)
# the request's prepared stream, for `_client_gone`
_STREAM: web.RequestKey[web.StreamResponse] = web.RequestKey("sim_stream", web.StreamResponse)


async def open_stream(request: web.Request, response: web.StreamResponse) -> None:
    """Send a stream's status line and headers, and remember the stream for `_client_gone`."""
    await response.prepare(request)
    request[_STREAM] = response


@web.middleware
async def _client_gone(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A client that leaves mid-stream (cancelling at its last budget) is normal, not a server error."""
    try:
        return await handler(request)
    except ConnectionResetError:
        stream: web.StreamResponse | None = request.get(_STREAM)
        if stream is None:
            raise
        return stream


class ErrorFormat:
    """A dialect's error responses. Dialects subclass it; `__call__` builds one response."""

    def __call__(
        self,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str],
        admission: Admission | None = None,
    ) -> web.Response:
        raise NotImplementedError

    def rate_limited(self, model: str, admission: Admission, cost: int) -> web.Response:
        raise NotImplementedError


@asynccontextmanager
async def open_simulator(
    config: SimConfig,
    datasets: Sequence[tuple[str, Path]],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Simulator]:
    """Start the simulator on ``host:port`` (0: any free port) and stop it on exit.

    Args:
        config: limits, speed, faults and models.
        datasets: (kind, path) pairs; the simulator knows gold answers only from these files.
        host: the address to bind (loopback by default).
        port: the port (0 picks a free one; see ``Simulator.base_url``).
        clock: the rate limiter's clock (tests may pass a fake one).
    """
    index = await asyncio.to_thread(open_index, datasets)
    sim = Simulator(config, index, clock)
    # handler_cancellation: a client that disconnects cancels its handler, which stops generation
    runner = web.AppRunner(sim.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = runner.addresses  # the one site's sockets, as getsockname() gives them
    bound_port = addresses[0][1] if addresses else port
    sim.base_url = f"http://{host}:{bound_port}"
    try:
        yield sim
    finally:
        await runner.cleanup()
