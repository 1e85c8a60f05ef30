"""The simulator's state: models, limits, caches, faults and counts, and the admission every dialect
shares (the app that serves it on loopback is `anytime_sim.app`).

Each dialect module parses its request into a `GenRequest` and calls `Simulator.admit`, which
runs what every protocol shares (model lookup, rate limits, before-stream faults, generation)
and returns a `Call`; the dialect then writes the response and ends the call in a ``finally``,
so a disconnected client is accounted exactly for the tokens it was sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

import msgspec
from aiohttp import web

from anytime_sim.batches import BatchStore
from anytime_sim.cache import AUTOMATIC, PendingWrites, PromptCache
from anytime_sim.call import Call, ContextOverflow, ErrorFormat, Reject
from anytime_sim.faults import BEFORE_STREAM, FaultPlan, parse_modes, plan_fault
from anytime_sim.knowledge import ProblemIndex
from anytime_sim.models import SimConfig, SimModel
from anytime_sim.ratelimit import Admission, LimitState, RateLimiter, key_digest
from anytime_sim.stats import ModelStats, SimStats, Tally, UsageReport
from anytime_sim.trace import GenRequest, TraceModel

# the usage reports kept for `GET /sim/usage` (a test instrument's run is far shorter)
USAGE_LOG_LIMIT = 1_000_000


class Simulator:
    """The running simulator. Use `open_simulator` to start one.

    Attributes:
        base_url: e.g. ``http://127.0.0.1:43121`` (dialect paths hang off it: ``/v1/...``).
    """

    def __init__(self, config: SimConfig, index: ProblemIndex, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.index = index
        self.logic = TraceModel(index)
        self.limiter = RateLimiter(config.rpm, config.tpm, clock, config.limit_window_s)
        self.cache = PromptCache()
        self.batches = BatchStore(config)
        self.base_url = ""
        self.in_flight = 0
        self.peak_in_flight = 0
        self._stats: dict[str, ModelStats] = {}
        self._key_stats: dict[str, ModelStats] = {}
        self._attempts: dict[str, int] = {}
        self._requests_seen = 0
        # per key digest: when the 429 storm it is in ends (the simulator's clock)
        self._storms: dict[str, float] = {}
        self._clock = clock
        self.usage_log: deque[UsageReport] = deque(maxlen=USAGE_LOG_LIMIT)
        # per model, the streams that the next request for the model stops (mode "interrupt")
        self._interruptible: dict[str, set[Call]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def list_models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "owned_by": "anytime-sim"} for name in self.config.models]
        return web.json_response({"object": "list", "data": data})

    async def stats_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    async def usage_handler(self, request: web.Request) -> web.Response:
        """``GET /sim/usage``: every final usage sent, oldest first (`UsageReport` list)."""
        return web.Response(body=msgspec.json.encode(list(self.usage_log)), content_type="application/json")

    def call_ended(self, call: Call, unused_tokens: int) -> None:
        if call.batch:
            return  # it held no connection and no rate-limit charge
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()
        self._interruptible.get(call.model.name, set()).discard(call)
        self.limiter.refund(call.api_key, unused_tokens)

    def commit_cache(self, pending: PendingWrites) -> None:
        self.cache.commit(pending)

    async def wait_idle(self) -> None:
        """Wait until no call is in flight (every handler has accounted its tokens)."""
        await self._idle.wait()

    def model_stats(self, name: str) -> ModelStats:
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = ModelStats()
        return stats

    def tally(self, model_name: str, api_key: str) -> Tally:
        """The counters a request of this model and key adds to."""
        digest = key_digest(api_key)
        by_key = self._key_stats.get(digest)
        if by_key is None:
            by_key = self._key_stats[digest] = ModelStats()
        return Tally(self.model_stats(model_name), by_key)

    def usage_sent(self, report: UsageReport) -> None:
        self.usage_log.append(report)

    def stats(self) -> SimStats:
        """A snapshot of the counters, per model and per key digest, and of every key's batches."""

        def copy(table: dict[str, ModelStats]) -> dict[str, ModelStats]:
            return {name: msgspec.structs.replace(s, faults=dict(s.faults)) for name, s in table.items()}

        batch_keys = {
            k: msgspec.structs.replace(v, models={m: msgspec.structs.replace(t) for m, t in v.models.items()})
            for k, v in self.batches.keys.items()
        }
        return SimStats(
            models=copy(self._stats),
            keys=copy(self._key_stats),
            in_flight=self.in_flight,
            peak_in_flight=self.peak_in_flight,
            batch_keys=batch_keys,
        )

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

        ``caching`` False turns automatic prompt caching off (Anthropic caches only at breakpoints,
        which its dialect reads itself). Prompt-cache rules per profile: `anytime_sim.cache`.
        """
        model = self._model(req.model, errors)
        modes = self._modes(request, errors)
        req = _with_seed_header(request, req)
        key = api_key or ""
        tally = self.tally(model.name, key)
        tally.add("requests")
        self._requests_seen += 1
        _require_key(model, api_key, errors, refuse="bad_key" in modes)
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
        admission = await self._admission(request, key, cost, fault, tally, model.name, errors)
        tally.add("input_tokens", prompt_tokens)
        cached, pending = 0, PendingWrites()
        rule = AUTOMATIC.get(model.profile)
        if caching and rule is not None:
            cached, pending = self.cache.automatic(cache_scope(model.name, key), prompt_ids[:-3], rule)
            tally.add("cached_input_tokens", cached)
        self.in_flight += 1
        self._idle.clear()
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        call = Call(self, model, req, generation, prompt_tokens, cap, key, modes, fault, admission, fingerprint)
        call.tally = tally
        # unique per request (retries of one body share the body's id): clients log it per attempt
        call.request_id = f"req_{call.id}_{self._requests_seen}"
        call.cached_tokens = cached
        call.cache_pending = pending
        for running in self._interruptible.pop(model.name, set()):
            running.interrupted = True
        if "interrupt" in modes:
            self._interruptible.setdefault(model.name, set()).add(call)
        return call

    def admit_batch(
        self, req: GenRequest, cap: int | None, body: bytes, errors: ErrorFormat, api_key: str, caching: bool = True
    ) -> Call:
        """A request inside a batch: what `admit` does, less the rate limits (a batch has its own
        queue and limits) and the stream's faults (a batch request errors or expires as a whole,
        `anytime_sim.batches` decides that). Its prompt cache works as the protocol's streams do.

        Raises:
            Reject: an unknown model, a missing key, a prompt over the context window.
        """
        model = self._model(req.model, errors)
        tally = self.tally(model.name, api_key)
        tally.add("requests")
        tally.add("batch_requests")
        self._requests_seen += 1
        _require_key(model, api_key, errors)
        fingerprint = hashlib.blake2b(model.name.encode() + b"\0" + body, digest_size=16).hexdigest()
        generation = self.logic.generate(model, req)
        prompt_ids = self.logic.prompt_tokens(req.messages)
        _refuse_overflow(model, len(prompt_ids), cap, errors)
        tally.add("input_tokens", len(prompt_ids))
        tally.add("batch_input_tokens", len(prompt_ids))
        admission = Admission(ok=True, state=LimitState())
        call = Call(
            self,
            model,
            req,
            generation,
            len(prompt_ids),
            cap,
            api_key,
            frozenset(),
            FaultPlan(),
            admission,
            fingerprint,
        )
        call.batch = True
        call.tally = tally
        call.request_id = f"req_{call.id}_{self._requests_seen}"
        rule = AUTOMATIC.get(model.profile)
        if caching and rule is not None:
            call.cached_tokens, call.cache_pending = self.cache.automatic(
                cache_scope(model.name, api_key), prompt_ids[:-3], rule
            )
            tally.add("cached_input_tokens", call.cached_tokens)
            tally.add("batch_cached_input_tokens", call.cached_tokens)
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
        self,
        request: web.Request,
        key: str,
        cost: int,
        fault: FaultPlan,
        tally: Tally,
        model_name: str,
        errors: ErrorFormat,
    ) -> Admission:
        """The rate limiter's admission, unless it refuses or a fault planned before the stream strikes.

        Raises:
            Reject: a 429 (real, injected or in a storm) or an injected server error, the charge
                refunded; for a reset, after the connection is gone.
        """
        storm_left = self._storm_left(key, fault, tally)
        if storm_left is not None:
            tally.add("rate_limited")
            storm = Admission(ok=False, state=self.limiter.state(key), retry_after_s=storm_left, reason="storm")
            raise Reject(errors.rate_limited(model_name, storm, cost))
        admission = self.limiter.admit(key, cost)
        if fault.kind == "stall_first":
            tally.fault("stall_first")
            await asyncio.sleep(fault.stall_s)
        if not admission.ok or fault.kind == "rate_limit":
            tally.add("rate_limited")
            if admission.ok:  # an injected 429: the request was never served, so it costs nothing
                self.limiter.refund(key, cost, requests=1)
            raise Reject(errors.rate_limited(model_name, admission, cost))
        if fault.kind == "reset":
            tally.fault("reset")
            self.limiter.refund(key, cost, requests=1)  # never served: it costs nothing
            _reset_connection(request)
            raise Reject(web.Response(status=502))  # never sent: the connection is gone
        if fault.kind in BEFORE_STREAM and fault.kind != "stall_first":
            tally.fault(fault.kind)
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
        return admission

    def _storm_left(self, key: str, fault: FaultPlan, tally: Tally) -> float | None:
        """Seconds left in the 429 storm this request meets (None: no storm): one already raging
        on its key, or one it sets off itself (the fault it drew)."""
        digest = key_digest(key)
        now = self._clock()
        until = self._storms.get(digest, 0.0)
        if until > now:
            return until - now
        if fault.kind != "rate_limit_storm":
            return None
        tally.fault("rate_limit_storm")
        seconds = self.config.faults.storm_seconds
        self._storms[digest] = now + seconds
        return seconds


def _reset_connection(request: web.Request) -> None:
    """Reset the request's TCP connection: SO_LINGER 0, then close, so the kernel sends an RST."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def cache_scope(model: str, api_key: str) -> str:
    """Whose cache a request reads and writes: one per model and key (an organisation's)."""
    return f"{model}\0{key_digest(api_key)}"


# hosts that serve without a key (a local vLLM or llama.cpp server); every API vendor wants one
KEYLESS_PROFILES = ("vllm", "llamacpp")


def _require_key(model: SimModel, api_key: str | None, errors: ErrorFormat, *, refuse: bool = False) -> None:
    """A vendor's API answers 401 to a request without a key, before anything else is looked at.

    ``refuse`` (mode ``bad_key``): the key is wrong, and the answer quotes it back, as some hosts do.
    """
    if model.profile not in KEYLESS_PROFILES and not api_key:
        message = "No API key provided. Send your key (the simulator accepts any non-empty one)."
        raise Reject(errors(401, "authentication", message, {}))
    if refuse:
        message = f"Incorrect API key provided: {api_key}. You can find your API key in your account settings."
        raise Reject(errors(401, "invalid_api_key", message, {}))


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
