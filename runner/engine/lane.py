"""Lanes: one per provider key. A lane runs a call through every attempt it needs.

Per attempt: admission (the limiter reserves a concurrency slot, a request and its tokens; answers
to streamed traces go before new traces; at the moment the limiter admits it, the spend guard
reserves its worst case, and when the cap can fit it only once calls in flight settle, the
admission is given back and the attempt waits for them), then the attempt itself
(`runner.engine.attempt`: send, stream), then settlement: whatever happened (success, provider
error, timeout, cancellation) exactly one `Attempt` record is appended to the ledger and the
reservations are settled. Appending is synchronous (the ledger writer batches and fsyncs on its
own task), so the record is written even when the attempt is being cancelled: nothing in the
``finally`` awaits.

A 429 does not use up one of the call's attempts while the call has time (`RetryPolicy`): the
next attempt re-enters the limiter, which holds the whole lane for the server's delay.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import anyio

from runner.engine.attempt import (
    AttemptState,
    CallSpec,
    Consumer,
    Timeouts,
    attempt_record,
    in_flight_record,
    price_attempt,
    stream_attempt,
)
from runner.engine.limits import Capacity, LaneStats, Limiter
from runner.engine.retry import RetryPolicy
from runner.engine.spend import WAIT_SPEND_CAP, SpendGate, SpendNeed
from runner.errors import (
    ConfigurationRejected,
    EndpointUnreachable,
    LaneStopped,
    ProviderError,
    RunStopped,
    SpendCapReached,
)
from runner.ledger.prices import worst_case_cost
from runner.ledger.records import InFlight, Record
from runner.providers.base import Adapter
from runner.types import RateLimitReading, Usage


class Tracking(Protocol):
    """A handle on a call whose spend the ledger samples while it streams."""

    def close(self) -> None: ...


class RecordSink(Protocol):
    """Where a lane writes: the ledger writer, or anything that keeps records the same way."""

    def append(self, record: Record) -> None:
        """Keep a record (never blocks)."""
        ...

    def track(self, snapshot: Callable[[], InFlight], *, recorded_usd: float = 0.0) -> Tracking:
        """Sample a streaming call's spend so far until the handle is closed (crash safety)."""
        ...

    async def append_durable(self, record: Record) -> None:
        """Keep a record and return once it would survive a crash."""
        ...


@dataclass
class CallResult:
    consumer: Consumer
    usage: Usage | None
    finish: str  # stop | length | truncated | cancelled_at_budget | ...
    attempts: int
    usd: float
    call_id: str = ""  # the ledger's call id (every attempt of the call carries it)


@dataclass
class LaneCounters:
    """What a lane has done, for displays (`runner.engine.progress` reads them)."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    errors: int = 0  # failed attempts, of any kind (429s included)
    n429: int = 0
    in_flight: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    failed_calls: int = 0  # calls that failed for good (their last attempt failed)
    errors_by_kind: Counter[str] = field(default_factory=Counter)  # failed attempts by error class
    recent: list[str] = field(default_factory=list)  # notable events: retries, stops
    failures: list[str] = field(default_factory=list)  # the last calls that failed for good, one line each
    # per model key: attempts, input and output tokens (settled), for the ETA's per-model work
    by_model: dict[str, ModelTally] = field(default_factory=dict)
    # per job still running: its output tokens so far (settled attempts); the sweep forgets a job
    # when it ends (`forget_job`)
    by_job: dict[str, int] = field(default_factory=dict)
    # the attempts streaming now, with their call: their text so far is progress a display can
    # count before they end
    streaming: dict[AttemptState, CallSpec] = field(default_factory=dict)

    def tally(self, model: str) -> ModelTally:
        tally = self.by_model.get(model)
        if tally is None:
            tally = self.by_model[model] = ModelTally()
        return tally

    def streamed(self) -> tuple[dict[str, int], dict[str, int]]:
        """Output tokens of the attempts still streaming, per model and per job, estimated as
        characters / 4 (as the ledger's in-flight records do); each is counted exactly when it settles."""
        by_model: Counter[str] = Counter()
        by_job: Counter[str] = Counter()
        for state, spec in self.streaming.items():
            tokens = state.received_chars // 4
            by_model[spec.model] += tokens
            by_job[spec.job_id] += tokens
        return by_model, by_job

    def forget_job(self, job_id: str) -> None:
        """A job ended: its tokens are no longer kept here."""
        self.by_job.pop(job_id, None)


@dataclass
class ModelTally:
    """One model's share of a lane's counters."""

    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


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
class _Retries:
    """A call's failed attempts so far: those that count against ``max_attempts`` and the 429s
    waited out, which do not (``since``: when the call began, on the loop's clock)."""

    since: float
    counted: int = 0
    rate_limited: int = 0


@dataclass
class Admission:
    """What an admitted attempt holds: its spend reservation and its limiter reservation."""

    reserved_usd: float
    reservation: Capacity


@dataclass
class Lane:
    name: str
    adapter: Adapter
    limiter: Limiter
    policy: RetryPolicy
    session: aiohttp.ClientSession
    ledger: RecordSink
    spend: SpendGate
    first_token_timeout: float
    idle_timeout: float
    total_timeout: float
    on_tokens: Callable[[int, int], None] = lambda _in, _out: None
    key_env: str | None = None  # the variable holding the lane's key, for the fix a 401 names
    counters: LaneCounters = field(default_factory=LaneCounters)
    priority: AnswersFirst = field(default_factory=AnswersFirst)
    stopped: LaneStopped | None = None  # set by a configuration error: no attempt starts after it
    halted: str | None = None  # set when the run stops (Ctrl-C): no attempt starts after it
    # until one response has opened, one attempt at a time probes the lane: a wrong key, model or
    # URL costs one attempt, not one per worker
    _proven: anyio.Event = field(default_factory=anyio.Event)
    _probing: bool = False
    _probe_over: anyio.Event = field(default_factory=anyio.Event)
    spend_waiting: int = 0  # attempts waiting for calls in flight to settle before they fit the cap

    async def call(self, spec: CallSpec, make_consumer: Callable[[], Consumer]) -> CallResult:
        """Run a call to success or to its last attempt; raise the last error if all fail."""
        call_id = uuid.uuid4().hex[:16]
        self.counters.calls += 1
        attempt = 0
        retries = _Retries(since=anyio.current_time())
        while True:
            attempt += 1
            consumer = make_consumer()
            try:
                state, usd = await self._attempt(spec, call_id, attempt, consumer)
            except ProviderError as exc:
                try:
                    await self._before_retry(exc, attempt, retries)
                except ProviderError:
                    self._failed(spec, attempt, exc)  # the call gives up: one line for the display
                    raise
                continue
            return CallResult(
                consumer=consumer, usage=state.usage, finish=state.finish, attempts=attempt, usd=usd, call_id=call_id
            )

    async def _before_retry(self, error: ProviderError, attempt: int, retries: _Retries) -> None:
        """Wait before the next attempt, or raise ``error`` when the call must give up.

        A 429 the policy lets the call wait out does not count against ``max_attempts``: the next
        attempt re-enters the limiter, which holds the lane for the server's delay.
        """
        wait = self.policy.wait_out_rate_limit(retries.rate_limited + 1, error, anyio.current_time() - retries.since)
        if wait is not None:
            retries.rate_limited += 1
            self.counters.retries += 1
            self._note(f"{self.name}: 429 on attempt {attempt}, waiting for the lane's limits")
            if wait:
                await anyio.sleep(wait)
            return
        retries.counted += 1
        delay = self.policy.delay(retries.counted, error)
        if delay is None:
            raise error
        self.counters.retries += 1
        self._note(f"{self.name}: {error.error_class} on attempt {attempt}, retrying in {delay:.1f}s")
        await anyio.sleep(delay)

    async def _attempt(
        self, spec: CallSpec, call_id: str, attempt: int, consumer: Consumer
    ) -> tuple[AttemptState, float]:
        probing = await self._wait_until_proven()
        try:
            return await self._admitted_attempt(spec, call_id, attempt, consumer)
        finally:
            if probing:
                self._end_probe()

    async def _wait_until_proven(self) -> bool:
        """Let one attempt at a time through until the lane has opened a response; True for the
        attempt that becomes the probe (the others wait until it opens a response or ends)."""
        while True:
            self._raise_if_stopped()
            if self._proven.is_set():
                return False
            if not self._probing:
                self._probing = True
                return True
            await self._probe_over.wait()

    def _end_probe(self) -> None:
        self._probing = False
        self._probe_over.set()
        self._probe_over = anyio.Event()

    def halt(self, reason: str) -> None:
        """No attempt starts from now on (those streaming go on); waiting ones give up."""
        self.halted = reason
        self._probe_over.set()  # wake attempts waiting for the probe, so they see the halt

    def _raise_if_stopped(self) -> None:
        if self.halted is not None:
            raise RunStopped(self.halted)
        if self.stopped is not None:
            raise LaneStopped(str(self.stopped), provider=self.name)

    def _opened(self) -> None:
        if not self._proven.is_set():
            self._proven.set()
            self._probe_over.set()  # the probe got its answer: every waiting worker may go

    async def _admitted_attempt(
        self, spec: CallSpec, call_id: str, attempt: int, consumer: Consumer
    ) -> tuple[AttemptState, float]:
        admission = await self._admit(spec)
        if self.halted is not None:  # the run stopped while this attempt waited for capacity
            self.spend.settle(self.name, admission.reserved_usd, 0.0)
            admission.reservation.cancel()
            raise RunStopped(self.halted)
        state = AttemptState()
        self.counters.in_flight += 1
        self.counters.attempts += 1
        self.counters.tally(spec.model).attempts += 1
        self.counters.streaming[state] = spec
        timeouts = Timeouts(
            spec.first_token_timeout or self.first_token_timeout,
            spec.idle_timeout or self.idle_timeout,
            self.total_timeout,
        )
        tracking: Tracking | None = None
        try:
            # the intent is on disk before the first byte is sent: no request can go unrecorded
            intent = in_flight_record(spec, self.name, call_id, attempt, state)
            await self.ledger.append_durable(intent)
            tracking = self.ledger.track(
                lambda: in_flight_record(spec, self.name, call_id, attempt, state), recorded_usd=intent.usd
            )
            await stream_attempt(self.adapter, self.session, spec.request, consumer, timeouts, state, self._on_response)
        except BaseException:
            state.interrupted = True  # cancelled before or while sending: settled below all the same
            raise
        finally:
            if tracking is not None:
                tracking.close()
            usd = self._settle(spec, call_id, attempt, consumer, admission, state)
        if state.error is not None:
            self._stop_if_misconfigured(spec, state.error)
            raise state.error
        return state, usd

    def _on_response(self, limits: RateLimitReading) -> None:
        self.limiter.observe(limits)
        self._opened()

    def _stop_if_misconfigured(self, spec: CallSpec, error: ProviderError) -> None:
        """A configuration error (or a host that never answered) stops the lane, with the fix."""
        never_reached = isinstance(error, EndpointUnreachable) and not self._proven.is_set()
        if not isinstance(error, ConfigurationRejected) and not never_reached:
            return
        where = f"providers.{self.name} (model {spec.request.model!r} at {self.adapter.base_url})"
        self.stopped = LaneStopped(f"{where}: {error} — {self._fix(error)}", provider=self.name)
        self._note(f"{self.name}: stopped: {error.error_class}")
        raise self.stopped from error

    def _fix(self, error: ProviderError) -> str:
        if isinstance(error, EndpointUnreachable):
            return f"nothing answers there: is the server running, and is providers.{self.name}.base_url right?"
        fixes = {
            401: f"check the key in ${self.key_env}" if self.key_env else f"set providers.{self.name}.api_key_env",
            403: "the key has no access to this model: check the model id and the key's project or region",
            404: f"check the model id and providers.{self.name}.base_url (does it end in the API's version path?)",
            429: "the account's quota is used up: add credit or use another key",
        }
        return fixes.get(error.status or 0, f"fix providers.{self.name}.base_url")

    async def _admit(self, spec: CallSpec) -> Admission:
        """The limiter's capacity, and the spend reserved at the moment the limiter admits the call.

        Raises SpendCapReached (before any I/O) only when the cap cannot fit the call whatever the
        calls in flight settle at; while it fits only if some of them cost less than their worst
        case, the admission is given back and the call waits for them to settle.
        """
        worst = worst_case_cost(spec.price, spec.prompt_tokens, spec.request.max_output_tokens)
        owner = (spec.job_id, spec.instance) if spec.instance is not None else None
        # a forced answer (a call with a budget) draws on its trace's commitment, if its job has one
        new_work, draws = spec.kind != "answer", spec.budget is not None
        cost = SpendNeed(self.name, worst, spec.commits_usd, new_work=new_work, owner=owner, draws=draws)
        while True:
            self.spend.raise_if_never_fits(cost)  # before waiting for the limiter for nothing
            reservation = await self._acquire(spec)
            try:
                # this process's guard never suspends here: nothing runs between the two admissions
                reserved = await self.spend.reserve(cost)
            except BaseException:
                reservation.cancel()
                raise
            if reserved is not None:
                return Admission(reserved, reservation)
            reservation.cancel()  # the call is not sent: its request, tokens and slot go back
            self.spend_waiting += 1
            try:
                await self.spend.wait_settled()
            finally:
                self.spend_waiting -= 1

    def release_commitment(self, job_id: str, instance: str) -> None:
        """A job's execution ended: the spend its forced answers did not draw goes back to the cap."""
        self.spend.release((job_id, instance))

    def stats(self) -> LaneStats:
        """The limiter's snapshot, with the lane's own reason to wait: the spend cap."""
        stats = self.limiter.stats()
        if self.spend_waiting:
            return dataclasses.replace(stats, waiting_for=WAIT_SPEND_CAP)
        return stats

    async def _acquire(self, spec: CallSpec) -> Capacity:
        tokens = spec.prompt_tokens + spec.request.max_output_tokens
        if spec.kind != "answer":
            await self.priority.before_trace()
            return await self.limiter.acquire(tokens)
        self.priority.answer_waiting()
        try:
            return await self.limiter.acquire(tokens)
        finally:
            self.priority.answer_admitted()

    def _settle(
        self, spec: CallSpec, call_id: str, attempt: int, consumer: Consumer, admission: Admission, state: AttemptState
    ) -> float:
        """Price the attempt, release what it held, react to its outcome, and write its record."""
        self.counters.in_flight -= 1
        self.counters.streaming.pop(state, None)
        priced = price_attempt(spec, state, consumer)
        self.spend.settle(self.name, admission.reserved_usd, priced.usd)
        usage = state.usage
        billed = priced.priced_from != "unbilled"
        used_input = usage.input_tokens if usage else spec.prompt_tokens if billed else 0
        used_output = usage.output_tokens if usage else priced.output_counted
        # a refused request used none of the provider's tokens: its whole reservation goes back
        admission.reservation.settle(used_input + used_output)
        self.counters.usd += priced.usd
        self.counters.input_tokens += used_input
        self.counters.output_tokens += used_output
        tally = self.counters.tally(spec.model)
        tally.input_tokens += used_input
        tally.output_tokens += used_output
        if spec.kind != "synthesis":  # a synthesis stage is no job: the ETA sizes jobs
            self.counters.by_job[spec.job_id] = self.counters.by_job.get(spec.job_id, 0) + used_output
        self.on_tokens(spec.prompt_tokens, priced.output_counted)
        if state.error is not None:
            self._on_error(state.error)
        elif not state.interrupted:
            self.limiter.on_success()
        self.ledger.append(attempt_record(spec, self.name, call_id, attempt, state, priced))
        return priced.usd

    def _on_error(self, error: ProviderError) -> None:
        self.counters.errors += 1
        self.counters.errors_by_kind[error.error_class] += 1
        if error.limits is not None:
            self.limiter.observe(error.limits)
        if error.error_class == "rate_limit":
            self.counters.n429 += 1
            self.limiter.on_rate_limited(error.retry_after_s)
        elif error.retryable:
            self.limiter.on_server_error()

    def _note(self, message: str) -> None:
        self.counters.recent.append(message)
        del self.counters.recent[:-5]

    def _failed(self, spec: CallSpec, attempts: int, error: ProviderError) -> None:
        self.counters.failed_calls += 1
        where = f"{spec.kind} of {spec.model}" + (f" at {spec.budget}" if spec.budget else "")
        message = " ".join(str(error).split())  # one line, whatever the provider's body held
        self.counters.failures.append(f"{self.name}: {where} failed after {attempts} attempt(s): {message}")
        del self.counters.failures[:-5]


__all__ = [
    "CallResult",
    "CallSpec",
    "Consumer",
    "Lane",
    "LaneCounters",
    "RecordSink",
    "SpendCapReached",
    "Tracking",
]
