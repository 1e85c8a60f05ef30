"""One HTTP attempt of a call, in three steps: send (open the stream), stream (feed the typed events
to the consumer under the watchdog), settle (price it, free its capacity, write its record).

`stream_attempt` never raises a provider error: it records it in the `AttemptState` so that
settling sees every outcome the same way; only cancellation passes through (and is settled too,
by the caller's ``finally``). `attempt_record` turns a settled attempt into its ledger record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import anyio

from runner.errors import CallTimeout, ProviderError
from runner.ledger.prices import ModelPrice, attempt_cost
from runner.ledger.records import Attempt, AttemptStatus, InFlight, PricedFrom
from runner.providers.base import Adapter, StreamResponse
from runner.types import (
    CallKind,
    ChatRequest,
    Content,
    Finish,
    PromptUsage,
    RateLimitReading,
    Reasoning,
    StreamEvent,
    Usage,
)

# a finish reason, as the consumer or the provider ended the stream, to the attempt's status
_STATUS: dict[str, AttemptStatus] = {"cancelled_at_budget": "cancelled", "length": "length", "truncated": "truncated"}


class Consumer(Protocol):
    """Receives one attempt's text; returns True from a feed to stop the stream (last budget)."""

    def on_reasoning(self, text: str) -> bool: ...

    def on_content(self, text: str) -> bool: ...

    def output_tokens_counted(self) -> tuple[int, int]:
        """(output tokens, of which reasoning) counted locally so far."""
        ...


@dataclass(frozen=True)
class CallSpec:
    """A call as the lane runs it: the request, its counted prompt and its price."""

    job_id: str
    kind: CallKind
    model: str  # model key
    request: ChatRequest
    prompt_tokens: int  # counted locally with the model's encoding
    price: ModelPrice
    budget: int | None = None
    instance: str | None = None  # the execution of the job this call belongs to
    # the worst case of the calls this one commits its job to (a trace's forced answers)
    commits_usd: float = 0.0
    # the model's timeouts, where they differ from the lane's (they follow its trace fidelity)
    first_token_timeout: float | None = None
    idle_timeout: float | None = None


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to the first event once the response is open, between events, and in all."""

    first_token: float
    idle: float
    total: float


@dataclass(eq=False)  # one per attempt, hashed by identity (a lane keeps the set of those streaming)
class AttemptState:
    """What one attempt has done so far; filled in as it goes, settled at the end."""

    started: float = field(default_factory=time.time)  # wall clock, for the record
    t0: float = field(default_factory=time.monotonic)
    ttft: float | None = None
    usage: Usage | None = None
    prompt_usage: PromptUsage | None = None  # the prompt side, stated as the response began
    finish: str = "truncated"  # stop | length | truncated | cancelled_at_budget | ...
    http_status: int | None = None
    request_id: str | None = None
    error: ProviderError | None = None
    interrupted: bool = False  # cancelled from outside (shutdown): still recorded and paid
    sent: bool = False  # the request was handed to the connection: it may have reached the provider
    opened: bool = False  # the provider answered 2xx and the stream began: from here on it bills
    received_chars: int = 0  # characters streamed, for the in-flight spend estimate

    @property
    def status(self) -> AttemptStatus:
        if self.interrupted:
            return "interrupted"
        if self.error is not None:
            return "error"
        return _STATUS.get(self.finish, "ok")


async def stream_attempt(
    adapter: Adapter,
    session: aiohttp.ClientSession,
    request: ChatRequest,
    consumer: Consumer,
    timeouts: Timeouts,
    state: AttemptState,
    on_limits: Callable[[RateLimitReading], None],
) -> None:
    """Send the request and feed its events to ``consumer`` until it ends, fails or is cut.

    One watchdog for every timeout of the attempt (a scope per chunk cost ~40% of client CPU at
    5,000 streams, and each live scope costs memory): the total deadline from the start, the
    first-token deadline once the response is open, then the idle deadline. Bytes move it, not
    parsed events: a model that thinks silently behind keep-alive comments or pings is alive. The
    deadline moves to now + 1.5 idle only once fewer than `idle` seconds are left, so a live stream
    is never cut before `idle` seconds of silence and a stall is caught within 1.5 idle.
    """
    watch = _Watchdog(anyio.current_time() + timeouts.total, timeouts.idle)
    state.sent = True
    try:
        with watch.scope:
            async with adapter.stream(session, request, watch.bytes_arrived) as response:
                _opened(response, state, on_limits)
                watch.await_first_bytes(timeouts.first_token)
                await _pump(response, consumer, state)
        if watch.scope.cancelled_caught:
            raise TimeoutError
    except TimeoutError:
        which = "first-token" if not watch.heard else "idle"
        state.error = CallTimeout(
            f"{adapter.provider}: no data within the {which} timeout or total timeout", provider=adapter.provider
        )
    except ProviderError as exc:
        state.error = exc
        state.http_status = exc.status if exc.status is not None else state.http_status
    except BaseException:
        state.interrupted = True
        raise


class _Watchdog:
    """The one cancel scope of an attempt, with the deadlines the bytes of its body move.

    Its clock is ``time.monotonic`` shifted onto the loop's clock once, at the start: the loop's
    own clock through `anyio.current_time` costs a backend lookup (~0.5 µs) on every read of every
    stream, and the deadlines here are seconds long, where the two clocks agree to a millisecond.
    """

    __slots__ = ("deadline", "heard", "idle", "offset", "scope", "total")

    def __init__(self, total_deadline: float, idle: float) -> None:
        self.total = total_deadline
        self.idle = idle
        self.heard = False
        self.deadline = total_deadline  # the scope's, kept here too: reading it back costs a property
        self.scope = anyio.CancelScope(deadline=total_deadline)
        self.offset = anyio.current_time() - time.monotonic()

    def _move(self, deadline: float) -> None:
        self.deadline = self.scope.deadline = min(self.total, deadline)

    def await_first_bytes(self, first_token: float) -> None:
        if not self.heard:
            self._move(time.monotonic() + self.offset + first_token)

    def bytes_arrived(self) -> None:
        """Called per read of the body (not per event): cheap unless the deadline is near."""
        now = time.monotonic() + self.offset
        if not self.heard:
            self.heard = True
            self._move(now + 1.5 * self.idle)
        elif self.deadline - now < self.idle and self.deadline < self.total:
            self._move(now + 1.5 * self.idle)


def _opened(response: StreamResponse, state: AttemptState, on_limits: Callable[[RateLimitReading], None]) -> None:
    state.opened = True
    state.http_status = response.status
    state.request_id = response.request_id
    on_limits(response.limits)


async def _pump(response: StreamResponse, consumer: Consumer, state: AttemptState) -> None:
    """The hot loop: one iteration per socket read, whose events come as one batch."""
    batches = response.batches.__aiter__()
    while True:
        try:
            batch = await batches.__anext__()
        except StopAsyncIteration:
            return
        if state.ttft is None:
            state.ttft = time.monotonic() - state.t0
        if _feed(batch[0], consumer, state) if len(batch) == 1 else _feed_batch(batch, consumer, state):
            state.finish = "cancelled_at_budget"
            return


def _feed(event: StreamEvent, consumer: Consumer, state: AttemptState) -> bool:
    """Hand one event on; True when the consumer has all it needs (the stream can be cut)."""
    if isinstance(event, Reasoning):
        state.received_chars += len(event.text)
        return consumer.on_reasoning(event.text)
    if isinstance(event, Content):
        state.received_chars += len(event.text)
        return consumer.on_content(event.text)
    if isinstance(event, Usage):
        state.usage = event
    elif isinstance(event, PromptUsage):
        state.prompt_usage = event
    elif isinstance(event, Finish):
        state.finish = event.reason
    return False


def _feed_batch(batch: list[StreamEvent], consumer: Consumer, state: AttemptState) -> bool:
    """Hand on the events of one read, each run of text of one kind joined into one feed: the
    tokenizer looks at text that arrived together once, whatever the chunking (its cuts are exact
    for any chunking). True when the consumer has all it needs."""
    run: list[str] = []
    run_kind: type | None = None
    for event in batch:
        kind = type(event)
        if kind is Reasoning or kind is Content:
            if kind is not run_kind and run:
                if _feed_text(run_kind, run, consumer, state):
                    return True
                run = []
            run_kind = kind
            run.append(event.text)  # type: ignore[union-attr]
            continue
        if run and _feed_text(run_kind, run, consumer, state):
            return True
        run = []
        _feed(event, consumer, state)
    return bool(run) and _feed_text(run_kind, run, consumer, state)


def _feed_text(kind: type | None, run: list[str], consumer: Consumer, state: AttemptState) -> bool:
    text = "".join(run)
    state.received_chars += len(text)
    return consumer.on_reasoning(text) if kind is Reasoning else consumer.on_content(text)


@dataclass(frozen=True)
class Priced:
    """An attempt's tokens as we counted them and its dollars."""

    output_counted: int
    reasoning_counted: int
    usd: float
    priced_from: PricedFrom


def price_attempt(spec: CallSpec, state: AttemptState, consumer: Consumer) -> Priced:
    """What the attempt costs. A request refused before any stream (429, 5xx, a failed connection)
    costs nothing: providers bill what they generate, and the prompt of a refused request is not
    processed. A cancelled or failed stream is billed for what it was sent."""
    out, reasoning = consumer.output_tokens_counted()
    refused = state.error is not None and not state.interrupted
    if not state.opened and (refused or not state.sent):
        return Priced(out, reasoning, 0.0, "unbilled")
    usd, priced_from = attempt_cost(spec.price, state.usage, spec.prompt_tokens, out, state.prompt_usage)
    return Priced(out, reasoning, usd, priced_from)


def attempt_record(
    spec: CallSpec, provider: str, call_id: str, attempt: int, state: AttemptState, priced: Priced
) -> Attempt:
    """The ledger record of a settled attempt."""
    usage, error = state.usage, state.error
    prompt = usage or state.prompt_usage  # a cut stream may still have stated its prompt
    if error is None and state.interrupted and not state.sent:
        error_text: str | None = "cancelled before the request was sent"
    else:
        error_text = str(error)[:500] if error else None
    return Attempt(
        call_id=call_id,
        job_id=spec.job_id,
        kind=spec.kind,
        provider=provider,
        model=spec.model,
        attempt=attempt,
        instance=spec.instance,
        status=state.status,
        budget=spec.budget,
        http_status=state.http_status,
        error_class=error.error_class if error else None,
        error=error_text,
        input_tokens=prompt.input_tokens if prompt else None,
        cached_input_tokens=prompt.cached_input_tokens if prompt else None,
        output_tokens=usage.output_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        cache_write_input_tokens=prompt.cache_write_input_tokens if prompt else None,
        input_tokens_counted=spec.prompt_tokens,
        output_tokens_counted=priced.output_counted,
        reasoning_tokens_counted=priced.reasoning_counted,
        priced_from=priced.priced_from,
        usd=priced.usd,
        billed_usd=usage.billed_usd if usage else None,
        started_at=state.started,
        latency_s=round(time.monotonic() - state.t0, 6),
        ttft_s=None if state.ttft is None else round(state.ttft, 6),
        request_id=state.request_id,
        max_output_tokens=spec.request.max_output_tokens,
    )


def in_flight_record(spec: CallSpec, provider: str, call_id: str, attempt: int, state: AttemptState) -> InFlight:
    """A streaming attempt's spend so far, for the ledger to keep in case the process dies.

    Output tokens are estimated as characters / 4 while streaming; the final record replaces the
    estimate with the exact count when the attempt ends.
    """
    out = state.received_chars // 4
    usd, _ = attempt_cost(spec.price, None, spec.prompt_tokens, out)
    return InFlight(
        call_id=call_id,
        job_id=spec.job_id,
        kind=spec.kind,
        provider=provider,
        model=spec.model,
        attempt=attempt,
        instance=spec.instance,
        status="interrupted",
        budget=spec.budget,
        input_tokens_counted=spec.prompt_tokens,
        output_tokens_counted=out,
        priced_from="counted",
        usd=usd,
        started_at=state.started,
        max_output_tokens=spec.request.max_output_tokens,
    )
