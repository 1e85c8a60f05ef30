"""Lanes: one per provider key. A lane runs a call through every attempt it needs.

Per attempt: the spend guard admits it, the limiter reserves requests and tokens, the adapter
streams typed events into a consumer with first-token / idle / total timeouts, and, whatever
happens (success, provider error, timeout, cancellation), exactly one `Attempt` record is
appended to the ledger and the reservations are settled. Appending is synchronous (the ledger
writer batches and fsyncs on its own task), so the record is written even when the attempt is
being cancelled: nothing in the `finally` awaits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import anyio

from runner.engine.limits import LaneLimiter, Reservation
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.errors import CallTimeout, ProviderError, SpendCapReached
from runner.ledger.prices import ModelPrice, attempt_cost, worst_case_cost
from runner.ledger.records import Attempt, CallKind
from runner.providers.base import Adapter
from runner.types import ChatRequest, Content, Finish, Reasoning, Usage


class Consumer(Protocol):
    """Receives one attempt's text; returns True from a feed to stop the stream (last budget)."""

    def on_reasoning(self, text: str) -> bool: ...

    def on_content(self, text: str) -> bool: ...

    def output_tokens_counted(self) -> tuple[int, int]:
        """(output tokens, of which reasoning) counted locally so far."""
        ...


class RecordSink(Protocol):
    def append(self, record: object) -> None: ...


@dataclass(frozen=True)
class CallSpec:
    job_id: str
    kind: CallKind
    model: str  # model key
    request: ChatRequest
    prompt_tokens: int  # counted locally with the model's encoding
    price: ModelPrice
    budget: int | None = None
    # the worst case of the calls this one commits its job to (a trace's forced answers)
    commits_usd: float = 0.0


@dataclass
class CallResult:
    consumer: Consumer
    usage: Usage | None
    finish: str  # stop | length | truncated | cancelled_at_budget | ...
    attempts: int
    usd: float


@dataclass
class LaneCounters:
    calls: int = 0
    attempts: int = 0
    retries: int = 0
    errors: int = 0
    n429: int = 0
    in_flight: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    recent: list[str] = field(default_factory=list)


class InFlightSpend:
    """A streaming call's spend so far, for the ledger to record in case the process dies.

    Output tokens are estimated as characters / 4 while streaming; the final `Attempt` record
    replaces the estimate with the exact count when the call ends.
    """

    __slots__ = ("attempt", "call_id", "provider", "received", "spec", "started")

    def __init__(self, provider: str, spec: CallSpec, call_id: str, attempt: int, started: float) -> None:
        self.provider = provider
        self.spec = spec
        self.call_id = call_id
        self.attempt = attempt
        self.started = started
        self.received = 0  # characters streamed so far

    def snapshot(self) -> Attempt:
        spec = self.spec
        out = self.received // 4
        usd, _ = attempt_cost(spec.price, None, spec.prompt_tokens, out)
        return Attempt(
            call_id=self.call_id,
            job_id=spec.job_id,
            kind=spec.kind,
            provider=self.provider,
            model=spec.model,
            attempt=self.attempt,
            status="interrupted",
            budget=spec.budget,
            input_tokens_counted=spec.prompt_tokens,
            output_tokens_counted=out,
            priced_from="counted",
            usd=usd,
            started_at=self.started,
        )


class AnswersFirst:
    """Answer calls for traces already streamed go before new traces.

    A finished trace's forced answers complete a job (and free its memory); a new trace only adds
    work. So a trace waits to ask the limiter for capacity while any answer call of the lane is
    waiting for it. Answers come only from traces, so traces cannot starve.
    """

    def __init__(self) -> None:
        self.answers_waiting = 0
        self._clear = anyio.Event()
        self._clear.set()

    async def before_trace(self) -> None:
        while self.answers_waiting:
            await self._clear.wait()

    def answer_waiting(self) -> None:
        self.answers_waiting += 1
        if self._clear.is_set():
            self._clear = anyio.Event()

    def answer_admitted(self) -> None:
        self.answers_waiting -= 1
        if not self.answers_waiting:
            self._clear.set()


@dataclass
class Lane:
    name: str
    adapter: Adapter
    limiter: LaneLimiter
    policy: RetryPolicy
    session: aiohttp.ClientSession
    ledger: RecordSink
    spend: SpendGuard
    first_token_timeout: float
    idle_timeout: float
    total_timeout: float
    on_tokens: Callable[[int, int], None] = lambda _in, _out: None
    counters: LaneCounters = field(default_factory=LaneCounters)
    priority: AnswersFirst = field(default_factory=AnswersFirst)

    async def call(self, spec: CallSpec, make_consumer: Callable[[], Consumer]) -> CallResult:
        """Run a call to success or to its last attempt; raise the last error if all fail."""
        call_id = uuid.uuid4().hex[:16]
        self.counters.calls += 1
        total_usd = 0.0
        attempt = 0
        while True:
            attempt += 1
            consumer = make_consumer()
            try:
                usage, finish, usd = await self._attempt(spec, call_id, attempt, consumer)
            except ProviderError as exc:
                delay = self.policy.delay(attempt, exc)
                if delay is None:
                    raise
                self.counters.retries += 1
                self._note(f"{self.name}: {exc.error_class} on attempt {attempt}, retrying in {delay:.1f}s")
                await anyio.sleep(delay)
                continue
            total_usd += usd
            return CallResult(consumer=consumer, usage=usage, finish=finish, attempts=attempt, usd=total_usd)

    async def _attempt(
        self, spec: CallSpec, call_id: str, attempt: int, consumer: Consumer
    ) -> tuple[Usage | None, str, float]:
        worst = worst_case_cost(spec.price, spec.prompt_tokens, spec.request.max_output_tokens)
        # raises SpendCapReached before any I/O
        reserved_usd = self.spend.reserve(
            self.name, worst, commits_usd=spec.commits_usd, new_work=spec.kind != "answer"
        )
        try:
            reservation = await self._acquire(spec)
        except BaseException:
            self.spend.settle(self.name, reserved_usd, 0.0)
            raise
        started = time.time()
        t0 = time.monotonic()
        ttft: float | None = None
        usage: Usage | None = None
        finish = "truncated"
        status = "error"
        http_status: int | None = None
        request_id: str | None = None
        error: ProviderError | None = None
        self.counters.in_flight += 1
        self.counters.attempts += 1
        track = getattr(self.ledger, "track", None)
        in_flight = InFlightSpend(self.name, spec, call_id, attempt, started) if track is not None else None
        tracked = track(in_flight.snapshot) if track is not None and in_flight is not None else None
        try:
            # One watchdog for every timeout of the attempt (a scope per chunk cost ~40% of client
            # CPU at 5,000 streams, and each live scope costs memory): the total deadline from the
            # start, the first-token deadline once the response is open, then the idle deadline,
            # moved to now + 1.5 idle only once fewer than `idle` seconds are left, so a live stream
            # is never cut before `idle` seconds of silence and a stall is caught within 1.5 idle.
            total_deadline = anyio.current_time() + self.total_timeout
            idle = self.idle_timeout
            with anyio.CancelScope(deadline=total_deadline) as watchdog:
                async with self.adapter.stream(self.session, spec.request) as response:
                    http_status = response.status
                    request_id = response.request_id
                    self.limiter.observe(response.limits)
                    events = response.events.__aiter__()
                    first = True
                    watchdog.deadline = min(total_deadline, anyio.current_time() + self.first_token_timeout)
                    while True:
                        try:
                            event = await events.__anext__()
                        except StopAsyncIteration:
                            break
                        now = anyio.current_time()
                        if first:
                            ttft = time.monotonic() - t0
                            first = False
                            watchdog.deadline = min(total_deadline, now + 1.5 * idle)
                        elif watchdog.deadline - now < idle and watchdog.deadline < total_deadline:
                            watchdog.deadline = min(total_deadline, now + 1.5 * idle)
                        if isinstance(event, Reasoning):
                            if in_flight is not None:
                                in_flight.received += len(event.text)
                            if consumer.on_reasoning(event.text):
                                finish = "cancelled_at_budget"
                                break
                        elif isinstance(event, Content):
                            if in_flight is not None:
                                in_flight.received += len(event.text)
                            if consumer.on_content(event.text):
                                finish = "cancelled_at_budget"
                                break
                        elif isinstance(event, Usage):
                            usage = event
                        elif isinstance(event, Finish):
                            finish = event.reason
            if watchdog.cancelled_caught:
                raise TimeoutError
            status = {"cancelled_at_budget": "cancelled", "length": "length", "truncated": "truncated"}.get(
                finish, "ok"
            )
        except TimeoutError:
            error = CallTimeout(
                f"{self.name}: no data within the {'first-token' if ttft is None else 'idle'} timeout or total timeout",
                provider=self.name,
            )
        except ProviderError as exc:
            error = exc
            http_status = exc.status if exc.status is not None else http_status
        except BaseException:
            status = "interrupted"  # cancelled from outside (shutdown): still recorded and paid
            raise
        finally:
            if tracked is not None:
                tracked.close()
            self.counters.in_flight -= 1
            out_counted, reasoning_counted = consumer.output_tokens_counted()
            usd, priced_from = attempt_cost(spec.price, usage, spec.prompt_tokens, out_counted)
            self.spend.settle(self.name, reserved_usd, usd)
            actual_tokens = usage.input_tokens + usage.output_tokens if usage else spec.prompt_tokens + out_counted
            reservation.settle(actual_tokens)
            self.counters.usd += usd
            self.counters.input_tokens += usage.input_tokens if usage else spec.prompt_tokens
            self.counters.output_tokens += usage.output_tokens if usage else out_counted
            self.on_tokens(spec.prompt_tokens, out_counted)
            if error is not None:
                self._on_error(error)
            else:
                self.limiter.on_success()
            self.ledger.append(
                Attempt(
                    call_id=call_id,
                    job_id=spec.job_id,
                    kind=spec.kind,
                    provider=self.name,
                    model=spec.model,
                    attempt=attempt,
                    status=status if error is None else "error",
                    budget=spec.budget,
                    http_status=http_status,
                    error_class=error.error_class if error else None,
                    error=str(error)[:500] if error else None,
                    input_tokens=usage.input_tokens if usage else None,
                    cached_input_tokens=usage.cached_input_tokens if usage else None,
                    output_tokens=usage.output_tokens if usage else None,
                    reasoning_tokens=usage.reasoning_tokens if usage else None,
                    cache_write_input_tokens=usage.cache_write_input_tokens if usage else None,
                    input_tokens_counted=spec.prompt_tokens,
                    output_tokens_counted=out_counted,
                    reasoning_tokens_counted=reasoning_counted,
                    priced_from=priced_from,
                    usd=usd,
                    billed_usd=usage.billed_usd if usage else None,
                    started_at=started,
                    latency_s=round(time.monotonic() - t0, 6),
                    ttft_s=None if ttft is None else round(ttft, 6),
                    request_id=request_id,
                )
            )
        if error is not None:
            raise error
        return usage, finish, usd

    async def _acquire(self, spec: CallSpec) -> Reservation:
        tokens = spec.prompt_tokens + spec.request.max_output_tokens
        if spec.kind != "answer":
            await self.priority.before_trace()
            return await self.limiter.acquire(tokens)
        self.priority.answer_waiting()
        try:
            return await self.limiter.acquire(tokens)
        finally:
            self.priority.answer_admitted()

    def _on_error(self, error: ProviderError) -> None:
        self.counters.errors += 1
        limits = getattr(error, "limits", None)
        if limits is not None:
            self.limiter.observe(limits)
        if error.error_class == "rate_limit":
            self.counters.n429 += 1
            self.limiter.on_rate_limited(error.retry_after_s)
        elif error.retryable:
            self.limiter.on_server_error()

    def _note(self, message: str) -> None:
        self.counters.recent.append(message)
        del self.counters.recent[:-5]


__all__ = ["CallResult", "CallSpec", "Consumer", "Lane", "LaneCounters", "SpendCapReached"]
