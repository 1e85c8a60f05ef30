"""One admitted request (`Call`), the errors answered before a stream (`Reject`), and what every
dialect shares to send a response.

A call talks to the simulator that admitted it through `CallHost` only, so this module needs no
part of the server: the server creates calls, dialects drive them.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from anytime_sim.cache import PendingWrites
from anytime_sim.faults import FaultPlan
from anytime_sim.models import SimConfig, SimModel
from anytime_sim.pacing import Pacer, Plan, plan
from anytime_sim.ratelimit import Admission, key_digest
from anytime_sim.stats import Tally, UsageReport
from anytime_sim.trace import Generation, GenRequest, TraceModel

# hosts that write keep-alives into a silent stream (providers.md: DeepSeek R19, Anthropic pings)
KEEPALIVE_PROFILES = ("deepseek", "anthropic")


class CallHost(Protocol):
    """What a call needs of the simulator that admitted it."""

    config: SimConfig
    logic: TraceModel

    def usage_sent(self, report: UsageReport) -> None:
        """A response sent its final usage."""
        ...

    def call_ended(self, call: Call, unused_tokens: int) -> None:
        """The call is over: it leaves the in-flight count and its unused charge is refunded."""
        ...

    def commit_cache(self, pending: PendingWrites) -> None:
        """A call's prompt has been processed: the prefixes it writes become readable."""
        ...


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
        sim: CallHost,
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
        # what this call adds to the prompt cache once its first output token leaves
        self.cache_pending = PendingWrites()
        self.interrupted = False
        # a request inside a batch: no connection, no rate limit (batches have their own queue)
        self.batch = False
        # the counters this call adds to (its model's and its key's) and its unique request id:
        # the server that admits it sets both
        self.tally = Tally()
        self.request_id = f"req_{self.id}"
        self.charged = prompt_tokens + (cap if cap is not None else self.plan.output_tokens)
        self.pacer = Pacer(model.ttft_s, model.tokens_per_s, sim.config.time_scale)
        self._ended = False

    @property
    def keepalive_s(self) -> float | None:
        """How often this stream writes a keep-alive while silent: the hosts that document one
        (DeepSeek comments, Anthropic pings) and any stream in ``comments`` mode."""
        if self.model.profile in KEEPALIVE_PROFILES or "comments" in self.modes:
            return self.sim.config.keepalive_s
        return None

    def output_started(self) -> None:
        """The first output token leaves: the prompt has been processed, so its cache entries are
        written now (a request that arrived during the prefill missed them)."""
        if self.cache_pending.digests:
            self.sim.commit_cache(self.cache_pending)
            self.cache_pending = PendingWrites()

    def served(self, kind: str, tokens: int) -> None:
        self.output_started()
        if kind == "content":
            self.served_content += tokens
        else:
            self.served_reasoning += tokens

    def usage_reported(self) -> None:
        """The response has just sent its final usage: what was served so far, counted and logged."""
        self.tally.add("usage_reports")
        self.sim.usage_sent(
            UsageReport(
                request_id=self.request_id,
                key=key_digest(self.api_key),
                model=self.model.name,
                input_tokens=self.prompt_tokens,
                cached_input_tokens=self.cached_tokens,
                cache_write_input_tokens=self.cache_write_tokens,
                output_tokens=self.served_reasoning + self.served_content,
                reasoning_tokens=self.served_reasoning,
            )
        )

    def end(self, completed: bool) -> None:
        """Account the call once: served tokens, refund of the unused cap, completion."""
        if self._ended:
            return
        self._ended = True
        if completed:
            self.output_started()  # a response with no output at all was still processed
        tally = self.tally
        tally.add("output_tokens", self.served_reasoning + self.served_content)
        tally.add("reasoning_tokens", self.served_reasoning)
        tally.add("completed", int(completed))
        tally.add("disconnected", int(not completed))
        if self.batch:
            tally.add("batch_output_tokens", self.served_reasoning + self.served_content)
            return  # it held no connection and no rate-limit charge
        used = self.prompt_tokens + self.served_reasoning + self.served_content
        self.sim.call_ended(self, self.charged - used)


# the request's prepared stream, for `_client_gone`
_STREAM: web.RequestKey[web.StreamResponse] = web.RequestKey("sim_stream", web.StreamResponse)


async def open_stream(request: web.Request, response: web.StreamResponse) -> None:
    """Send a stream's status line and headers, and remember the stream for `_client_gone`."""
    await response.prepare(request)
    request[_STREAM] = response


# nginx's "client closed request": what a handler answers a client that has already left
CLIENT_GONE = 499


@web.middleware
async def client_gone(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A client that leaves is normal, not a server error: mid-stream (cancelling at its last
    budget), or before the stream's first byte (a client killed while its request was admitted)."""
    try:
        return await handler(request)
    except ConnectionResetError:
        stream: web.StreamResponse | None = request.get(_STREAM)
        # aiohttp drops a response to a closed connection quietly
        return stream if stream is not None else web.Response(status=CLIENT_GONE)


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


def bearer_key(request: web.Request) -> str | None:
    """The key of an ``Authorization: Bearer`` header (OpenAI-style hosts; newer Anthropic SDKs)."""
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else None
