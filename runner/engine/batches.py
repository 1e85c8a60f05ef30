"""Calls through the providers' batch interfaces (``run.mode = "batch"``): collected into batches,
submitted, polled, and handed back to the jobs that asked.

Jobs are written as in stream mode, one coroutine each: a job asks for its trace
(`BatchEngine.call`) and waits; the engine gathers what every waiting job asks and submits it
when no job can make progress without an answer (every coroutine waits on the engine, on a gate
the engine opens, or has finished): one batch per (lane, model), split where a provider caps a
batch's size. So the traces of all jobs go out together, then their answers as they come back,
with no timer deciding when a wave is complete.

A call's id is a hash of its job, kind, budget and request, the same in every process; each
attempt of it is one request line whose ``custom_id`` is ``<call id>-<attempt>``. What the ledger
already holds for a call decides what `call` does (docs/batch.md): an attempt that came back
answered is read again from its batch (never paid twice); one inside a batch still unfinished
waits for that batch, which the engine adopted at start; otherwise the next attempt number goes
into a new batch. Errored and expired requests are retried in a later batch (up to the lane's
``max_attempts``), every attempt ledgered.

The spend cap holds as in stream mode, per request: each request's worst case (at batch prices;
a trace's with its answers' as the job's commitment) is reserved before its batch is submitted,
and a request that fits only once batches in flight settle waits for one to settle.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import msgspec
import tiktoken
from anyio.abc import TaskGroup

from runner.engine.attempt import CallSpec
from runner.engine.batch_submission import Lane, Returned, SubmissionRun, adopt, new_key
from runner.engine.lane import RecordSink
from runner.engine.snapshots import BatchSnapshot
from runner.engine.spend import SpendGuard, SpendNeed
from runner.errors import ProviderError, RunStopped, SpendCapReached
from runner.ledger.batch_state import BatchHistory
from runner.ledger.prices import ModelPrice, worst_case_cost
from runner.ledger.records import Attempt, BatchLine
from runner.providers.batch import BatchState, LineResult
from runner.types import Content, Finish, Reasoning, StreamEvent, Usage

# requests one batch may hold, per interface (OpenAI 50,000 and 200 MB; Anthropic 100,000 and
# 256 MB; Gemini's inline requests are capped by the 20 MB request, so fewer go in one)
MAX_LINES = {"openai": 50_000, "anthropic": 100_000, "gemini": 500}
MAX_CHARS = 100_000_000  # prompt characters one batch may carry (well under every size limit)
ENDED_SHOWN = 8  # ended batches the dashboard keeps showing


@dataclass
class BatchAnswer:
    """A call's answer from its batch: the events its stream would have given, and its cost."""

    events: list[StreamEvent]
    usage: Usage | None
    finish: str
    usd: float
    attempts: int
    call_id: str


@dataclass(eq=False)
class BatchCall:
    """One call of a job in batch mode, and where it stands."""

    lane: str
    spec: CallSpec
    call_id: str
    attempt: int = 0
    tries: int = 0  # lines this process sent for it
    reserved: float = 0.0
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: BatchAnswer | None = None
    error: BaseException | None = None

    @property
    def custom_id(self) -> str:
        return f"{self.call_id}-{self.attempt}"


def call_id_of(spec: CallSpec, run: str) -> str:
    """A call's id: the same for the same request of the same job in every process of a run
    (``run``: its folder's name), and another in another run of the same manifest."""
    identity = msgspec.json.encode([run, spec.job_id, spec.kind, spec.budget, spec.request])
    return hashlib.blake2b(identity, digest_size=8).hexdigest()


class Gate:
    """Something jobs wait for that the engine does not answer (a group's preface): while they
    wait they do not hold a batch back, and opening it counts them as busy again."""

    def __init__(self, engine: BatchEngine) -> None:
        self.engine = engine
        self.opened = anyio.Event()
        self.waiting = 0

    async def wait(self) -> None:
        if self.opened.is_set():
            return
        self.waiting += 1
        self.engine.idle()
        await self.opened.wait()

    def open(self) -> None:
        self.engine.active += self.waiting
        self.waiting = 0
        self.opened.set()


@dataclass
class ModelRates:
    """A model's batch rates and how its output is counted when a result states no usage."""

    price: ModelPrice
    encoding: tiktoken.Encoding

    def count(self, events: list[StreamEvent]) -> tuple[int, int]:
        reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
        content = "".join(e.text for e in events if isinstance(e, Content))
        r = len(self.encoding.encode_ordinary(reasoning))
        return r + len(self.encoding.encode_ordinary(content)), r


class BatchEngine:
    """Batches the calls of a run's jobs; see the module docstring."""

    def __init__(
        self,
        lanes: dict[str, Lane],
        rates: dict[str, ModelRates],
        ledger: RecordSink,
        spend: SpendGuard,
        history: BatchHistory,
        max_attempts: dict[str, int],
        interfaces: dict[str, str],
        run_id: str = "",
        on_attempt: Callable[[Attempt], None] = lambda _attempt: None,
    ) -> None:
        self.lanes, self.rates, self.spend, self.history = lanes, rates, spend, history
        self.ledger = ledger
        self.max_attempts, self.interfaces = max_attempts, interfaces
        self.on_attempt = on_attempt  # each attempt ledgered (the display's counters)
        self.run_id = run_id
        self.active = 0  # job coroutines not waiting on the engine
        self.pending: list[BatchCall] = []
        self.deferred: list[BatchCall] = []  # fit the spend cap only once a batch settles
        self.waiting: dict[str, BatchCall] = {}  # by custom id: calls whose line is in a batch
        self.fetched: dict[str, LineResult] = {}  # results no waiting call has asked for yet
        self.runs: list[SubmissionRun] = []  # live and recently ended, for the dashboard
        self.live: dict[str, SubmissionRun] = {}  # by custom id: the unfinished batch holding the line
        self.refetching: dict[str, list[BatchCall]] = {}  # batch id -> calls waiting for its results
        self.halted: str | None = None
        self.recent: list[str] = []
        self._tg: TaskGroup | None = None

    # ---- the jobs' side -----------------------------------------------------------------------

    def enter(self) -> None:
        """A job coroutine starts."""
        self.active += 1

    def leave(self) -> None:
        """A job coroutine ends."""
        self.active -= 1
        self._maybe_flush()

    def idle(self) -> None:
        """The caller waits for something the engine or a gate will count it back from."""
        self.active -= 1
        self._maybe_flush()

    def gate(self) -> Gate:
        return Gate(self)

    async def gather(self, work: list[Callable[[], Awaitable[None]]]) -> None:
        """Run ``work`` concurrently, each counted as a job coroutine of its own; the caller waits
        for them without holding a batch back, and goes on counted once the last one ends."""
        if not work:
            return
        left = len(work)

        async def run(one: Callable[[], Awaitable[None]]) -> None:
            nonlocal left
            try:
                await one()
            finally:
                left -= 1
                if left == 0:
                    self.active += 1  # the caller goes on
                self.leave()

        self.active += len(work)
        async with anyio.create_task_group() as tg:
            for one in work:
                tg.start_soon(run, one)
            self.idle()

    async def call(self, lane: str, spec: CallSpec) -> BatchAnswer:
        """Send one call through its lane's batches and wait for its answer.

        Raises:
            ProviderError: every attempt failed (the last one's error).
            SpendCapReached: the cap cannot fit it. RunStopped: the run is stopping.
        """
        if self.halted is not None:
            raise RunStopped(self.halted)
        call = BatchCall(lane, spec, call_id_of(spec, self.run_id))
        if not self._attach(call):
            return self._answer_of(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        assert call.answer is not None
        return call.answer

    def _attach(self, call: BatchCall) -> bool:
        """Put the call where its answer will come from; False when the answer is here already."""
        done = [a for a in self.history.attempts.get(call.call_id, []) if a.status in ("ok", "length")]
        if done and done[-1].batch_id is not None:  # answered in an earlier process: read it again
            call.attempt = done[-1].attempt
            if call.custom_id in self.fetched:
                return False
            batch_id = done[-1].batch_id
            self.refetching.setdefault(batch_id, []).append(call)
            if len(self.refetching[batch_id]) == 1:
                self._start(self._refetch, call.lane, batch_id)
        else:
            last = self.history.last_attempt(call.call_id)
            call.attempt = last if f"{call.call_id}-{last}" in self.live else last + 1
            if call.custom_id in self.fetched:
                return False
            if call.custom_id in self.live:  # inside a batch an earlier process submitted
                self.waiting[call.custom_id] = call
            else:
                self.pending.append(call)
        self.idle()
        return True

    def _answer_of(self, call: BatchCall) -> BatchAnswer:
        result = self.fetched.pop(call.custom_id)
        recorded = next((a for a in self.history.attempts.get(call.call_id, []) if a.attempt == call.attempt), None)
        return _answer(result, recorded.usd if recorded is not None else 0.0, call)

    # ---- flushing -----------------------------------------------------------------------------

    def _maybe_flush(self) -> None:
        if self.active > 0 or not self.pending or self._tg is None:
            return
        if self.halted is not None:
            for call in self.pending:
                self._fail(call, RunStopped(self.halted))
            self.pending.clear()
            return
        groups: dict[tuple[str, str], list[BatchCall]] = defaultdict(list)
        for call in self.pending:
            groups[(call.lane, call.spec.model)].append(call)
        self.pending = []
        for (lane, model), calls in groups.items():
            for chunk in self._chunks(lane, calls):
                self._start(self._submit_new, lane, model, chunk)

    def _chunks(self, lane: str, calls: list[BatchCall]) -> list[list[BatchCall]]:
        most = MAX_LINES.get(self.interfaces[lane], 10_000)
        chunks: list[list[BatchCall]] = [[]]
        chars = 0
        for call in calls:
            size = sum(len(m.content) for m in call.spec.request.messages)
            if len(chunks[-1]) >= most or (chunks[-1] and chars + size > MAX_CHARS):
                chunks.append([])
                chars = 0
            chunks[-1].append(call)
            chars += size
        return [c for c in chunks if c]

    def _start(self, func: Callable[..., object], *args: object) -> None:
        assert self._tg is not None
        self._tg.start_soon(func, *args)  # type: ignore[arg-type]

    def _reserve(self, calls: list[BatchCall]) -> list[BatchCall]:
        """Reserve each call's worst case; those that fit go, the others wait or fail."""
        fits: list[BatchCall] = []
        for call in calls:
            spec = call.spec
            rates = self.rates[spec.model]
            worst = worst_case_cost(rates.price, spec.prompt_tokens, spec.request.max_output_tokens)
            owner = (spec.job_id, spec.instance) if spec.instance is not None else None
            need = SpendNeed(
                call.lane,
                worst,
                spec.commits_usd,
                new_work=spec.kind != "answer",
                owner=owner,
                draws=spec.budget is not None,
            )
            try:
                reserved = self.spend.try_reserve(need)
            except SpendCapReached as exc:
                self._fail(call, exc)
                continue
            if reserved is None:
                self.deferred.append(call)
                continue
            call.reserved = reserved
            fits.append(call)
        return fits

    # ---- a submission's life ------------------------------------------------------------------

    async def _submit_new(self, lane_name: str, model: str, calls: list[BatchCall]) -> None:
        calls = self._reserve(calls)
        if not calls:
            return
        lane = self.lanes[lane_name]
        for call in calls:
            call.tries += 1
        lines = [_line(call) for call in calls]
        run = self._run(lane, model, new_key(), lines, sum(c.reserved for c in calls))
        for call in calls:
            self.waiting[call.custom_id] = call
        try:
            sent = await run.submit(self.ledger, {c.custom_id: c.spec.request for c in calls})
        except ProviderError as exc:
            self._settle_calls(calls, {})
            for call in calls:
                self._fail(call, exc)
            return
        if not sent:  # never reached the provider: its requests go again, same attempt numbers
            self._settle_calls(calls, {})
            for call in calls:
                call.tries -= 1
                self.waiting.pop(call.custom_id, None)
                self.live.pop(call.custom_id, None)
            self.pending.extend(calls)
            self._maybe_flush()
            return
        await self._finish(run, calls)

    async def _finish(self, run: SubmissionRun, calls: list[BatchCall] | None) -> None:
        """Wait for a batch to end, ledger its results, settle the spend, hand the answers over."""
        try:
            await run.wait_ended()
            returned = await run.collect(self.ledger)
        except ProviderError as exc:
            returned = [
                Returned(line, LineResult(line.custom_id, "errored", [], None, exc), None) for line in run.lines
            ]
        for line in run.lines:
            self.live.pop(line.custom_id, None)
        usd = {r.line.custom_id: r.attempt.usd for r in returned if r.attempt is not None}
        if calls is None:
            self.spend.settle(run.lane.name, run.reserved_usd, sum(usd.values()))
        else:
            self._settle_calls(calls, usd)
        for item in returned:
            if item.attempt is not None:
                self.on_attempt(item.attempt)
            self._returned(item)
        self._wake_deferred()

    def _settle_calls(self, calls: list[BatchCall], usd: dict[str, float]) -> None:
        for call in calls:
            self.spend.settle(call.lane, call.reserved, usd.get(call.custom_id, 0.0))
            call.reserved = 0.0

    def _returned(self, item: Returned) -> None:
        """One request came back: answer its call, retry it, or keep it for a call to come."""
        line, result = item.line, item.result
        assert result is not None
        call = self.waiting.pop(line.custom_id, None)
        if call is None:
            if result.outcome == "succeeded":
                self.fetched[line.custom_id] = result
            return
        if result.outcome == "succeeded":
            call.answer = _answer(result, item.attempt.usd if item.attempt is not None else 0.0, call)
            self._wake(call)
            return
        error = result.error or ProviderError(f"{call.lane}: batch request {line.custom_id} {result.outcome}")
        if error.retryable and call.tries < self.max_attempts[call.lane] and self.halted is None:
            call.attempt = max(call.attempt, self.history.last_attempt(call.call_id)) + 1
            self._note(f"{call.lane}: {error.error_class} in a batch, request {line.custom_id} goes again")
            self.pending.append(call)
            self._maybe_flush()
            return
        self._fail(call, error)

    def _run(self, lane: Lane, model: str, key: str, lines: list[BatchLine], reserved: float) -> SubmissionRun:
        run = SubmissionRun(
            lane=lane,
            model=model,
            key=key,
            lines=lines,
            reserved_usd=reserved,
            price=self.rates[model].price,
            count_output=self.rates[model].count,
            note=self._note,
        )
        self._track(run)
        return run

    def _track(self, run: SubmissionRun) -> None:
        self.runs.append(run)
        for line in run.lines:
            self.live[line.custom_id] = run
        ended = [r for r in self.runs if r.state is not None and r.state.phase == "ended"]
        if len(ended) > 4 * ENDED_SHOWN:  # keep the dashboard's list short in a long run
            drop = set(map(id, ended[:-ENDED_SHOWN]))
            self.runs = [r for r in self.runs if id(r) not in drop]

    # ---- a resumed run ------------------------------------------------------------------------

    async def adopt_unfinished(self) -> None:
        """Take over the unfinished batches an earlier process left: look up those whose id it
        never recorded (found: polled; not found: lost, their requests go again), poll the rest.
        Runs before any job asks for a call, so nothing is sent twice."""
        for sub in self.history.unfinished():
            if sub.intent.model not in self.rates or sub.intent.provider not in self.lanes:
                continue  # a model this run leaves out: its batch stays for a run that has it
            lane = self.lanes[sub.intent.provider]
            rates = self.rates[sub.intent.model]
            run = adopt(sub, lane, rates.price, rates.count, self.history.recorded)
            run.note = self._note
            if run.state is None and not await run.find(self.ledger, "its id was never recorded"):
                sub.lost = True
                continue
            self.spend.hold(lane.name, run.reserved_usd)
            self._track(run)
            self._start(self._finish, run, None)

    async def _refetch(self, lane: str, batch_id: str) -> None:
        """Read again the results of a batch an earlier process ledgered: calls of unfinished jobs
        want the answers it paid for."""
        client = self.lanes[lane]
        try:
            state = await client.client.poll(client.session, batch_id)
            results = await client.client.results(client.session, state)
        except ProviderError as exc:
            self._note(f"{lane}: batch {batch_id}'s results could not be read again ({exc.error_class})")
            results = []
        for result in results:
            self.fetched.setdefault(result.custom_id, result)
        for call in self.refetching.pop(batch_id, []):
            if call.custom_id in self.fetched:
                call.answer = self._answer_of(call)
                self._wake(call)
            else:  # gone at the provider: ask again, as a new attempt
                call.attempt = self.history.last_attempt(call.call_id) + 1
                self.pending.append(call)
        self._maybe_flush()

    # ---- helpers ------------------------------------------------------------------------------

    def _wake(self, call: BatchCall) -> None:
        self.active += 1
        call.done.set()

    def _fail(self, call: BatchCall, error: BaseException) -> None:
        self.waiting.pop(call.custom_id, None)
        call.error = error
        self._wake(call)

    def _wake_deferred(self) -> None:
        if self.deferred:
            self.pending.extend(self.deferred)
            self.deferred.clear()
        self._maybe_flush()

    def _note(self, message: str) -> None:
        self.recent.append(message)
        del self.recent[:-5]

    def halt(self, reason: str) -> None:
        """No batch is submitted from now on; calls not yet in one give up."""
        self.halted = reason
        self._maybe_flush()

    def bind(self, tg: TaskGroup) -> None:
        """The task group submissions and polls run in (the run's own)."""
        self._tg = tg

    def snapshots(self) -> tuple[BatchSnapshot, ...]:
        """Batches in flight, then the last ended ones, for the dashboard."""
        now = time.time()
        live = [r for r in self.runs if r.state is None or r.state.phase != "ended"]
        ended = [r for r in self.runs if r.state is not None and r.state.phase == "ended"][-ENDED_SHOWN:]
        return tuple(_snapshot(run, now) for run in [*live, *ended])


def _line(call: BatchCall) -> BatchLine:
    spec = call.spec
    return BatchLine(
        custom_id=call.custom_id,
        call_id=call.call_id,
        attempt=call.attempt,
        job_id=spec.job_id,
        kind=spec.kind,
        instance=spec.instance,
        budget=spec.budget,
        prompt_tokens=spec.prompt_tokens,
        max_output_tokens=spec.request.max_output_tokens,
    )


def _answer(result: LineResult, usd: float, call: BatchCall) -> BatchAnswer:
    usage = next((e for e in result.events if isinstance(e, Usage)), None)
    finish = next((e.reason for e in result.events if isinstance(e, Finish)), "truncated")
    return BatchAnswer(result.events, usage, finish, usd, max(call.tries, 1), call.call_id)


def _snapshot(run: SubmissionRun, now: float) -> BatchSnapshot:
    state: BatchState | None = run.state
    if state is None:
        label = "submitting"
    elif state.phase == "ended":
        label = "expired" if state.expired else "ended"
    else:
        label = "in progress" if state.phase == "running" else "submitted"
    return BatchSnapshot(
        lane=run.lane.name,
        model=run.model,
        key=run.key,
        batch_id=state.batch_id if state is not None else None,
        state=label,
        status=run.status,
        total=state.total if state is not None and state.total else len(run.lines),
        done=state.done if state is not None else 0,
        failed=state.failed if state is not None else 0,
        age_s=max(0.0, now - run.submitted_at),
    )
