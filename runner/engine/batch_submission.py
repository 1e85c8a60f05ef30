"""The life of one provider batch: written down, submitted (or found), polled, read, ledgered.

`SubmissionRun` drives one batch through a `BatchClient` (which only talks to the provider) and
writes each step to the ledger, in the order that makes a crash at any point recoverable
(docs/batch.md, "Crash safety"):

1. ``intent`` (durable, before any byte is sent): our key, its requests (``custom_id`` = call
   id and attempt), the model, and the worst case reserved against the spend cap;
2. OpenAI-style: the request file is uploaded under our key's name and its id recorded
   (``uploaded``, durable) before the batch is created from it;
3. ``submitted`` (durable): the provider's batch id. A submission whose answer never came back
   (the connection broke, the process died) is looked up by our key (`BatchClient.find`)
   before anything is sent again: found, it is recorded with ``found = true`` and polled; not
   found, it is recorded ``lost`` and its requests go out again in a new batch;
4. polled until it has ended (transient poll errors are waited out);
5. each request's result becomes its ``attempt`` record (priced at the batch rates; an errored,
   expired or canceled request is unbilled), the spend reservation is settled, and ``ended`` is
   written last. A request with no result at all is an errored attempt.

A resumed run adopts the unfinished submissions of the ledger (`adopt`): it polls them, never
submits them again, and ledgers only the requests whose attempt is not in the ledger yet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import aiohttp
import anyio

from runner.errors import FatalProviderError, ProviderError, ServerError
from runner.ledger.batch_state import Submission
from runner.ledger.prices import ModelPrice, attempt_cost
from runner.ledger.records import Attempt, AttemptStatus, BatchEvent, BatchLine, Record
from runner.providers.batch import BatchClient, BatchState, Found, LineRequest, LineResult
from runner.types import ChatRequest, Finish, Reasoning, StreamEvent, Usage

POLL_BACKOFF_MAX_S = 600.0  # the longest wait between polls after errors


class Ledger(Protocol):
    """What a submission writes to: the run's ledger."""

    def append(self, record: Record) -> None: ...

    async def append_durable(self, record: Record) -> None: ...


class Counted(Protocol):
    """Counts the output of a request's events with its model's encoding (no usage reported)."""

    def __call__(self, events: list[StreamEvent]) -> tuple[int, int]: ...


@dataclass
class Lane:
    """What a submission needs of its lane: the provider's batch client, its HTTP session, and how
    often to poll."""

    name: str
    client: BatchClient
    session: aiohttp.ClientSession
    poll_s: float


class Returned(NamedTuple):
    """One request of an ended batch: its line, its result (None: none came back) and its attempt
    record (None: a process before this one recorded it)."""

    line: BatchLine
    result: LineResult | None
    attempt: Attempt | None


def new_key() -> str:
    """Our id of a submission: the request file's name, the display name it is found by."""
    return f"anytime-{uuid.uuid4().hex[:20]}"


@dataclass(eq=False)
class SubmissionRun:
    """One batch of one model on one lane, from intent to its last result."""

    lane: Lane
    model: str
    key: str
    lines: list[BatchLine]
    reserved_usd: float
    price: ModelPrice  # the model's batch rates
    count_output: Counted
    state: BatchState | None = None
    submitted_at: float = field(default_factory=time.time)
    file_id: str | None = None
    recorded: frozenset[str] = frozenset()  # custom ids whose attempt an earlier process recorded
    note: Callable[[str], None] = lambda _message: None

    @property
    def status(self) -> str:
        return self.state.status if self.state is not None else "submitting"

    def event(self, kind: str, **fields: object) -> BatchEvent:
        return BatchEvent(
            key=self.key,
            event=kind,  # type: ignore[arg-type]
            at=time.time(),
            provider=self.lane.name,
            model=self.model,
            batch_id=self.state.batch_id if self.state is not None else None,
            file_id=self.file_id,
            **fields,  # type: ignore[arg-type]
        )

    async def submit(self, ledger: Ledger, requests: dict[str, ChatRequest]) -> bool:
        """Write the intent, then submit; False when the provider never got it (recorded lost)."""
        await ledger.append_durable(self.event("intent", lines=self.lines, reserved_usd=self.reserved_usd))

        async def uploaded(file_id: str) -> None:
            self.file_id = file_id
            await ledger.append_durable(self.event("uploaded"))

        lines = [LineRequest(line.custom_id, requests[line.custom_id]) for line in self.lines]
        try:
            self.state = await self.lane.client.submit(self.lane.session, self.key, lines, uploaded)
        except ProviderError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 409, 429):
                ledger.append(self.event("lost", message=f"refused: {exc}"[:500]))
                raise
            return await self.find(ledger, f"no answer to the submission ({exc})", requests)
        await ledger.append_durable(self.event("submitted", status=self.state.status))
        return True

    async def find(self, ledger: Ledger, reason: str, requests: dict[str, ChatRequest] | None = None) -> bool:
        """Look the submission up by our key; record it found, or lost (False).

        The provider must answer before anything is sent again (a batch it holds would be paid
        twice), so a lookup that fails is tried again until it answers. An OpenAI-style upload
        found without its batch gets its batch now, from the same file.
        """
        found = await self._look_up()
        if found is not None and found.state is None and found.file_id is not None and requests is not None:
            self.file_id = found.file_id
            lines = [LineRequest(line.custom_id, requests[line.custom_id]) for line in self.lines]
            self.state = await self.lane.client.submit(
                self.lane.session, self.key, lines, _nothing, file_id=found.file_id
            )
            await ledger.append_durable(self.event("submitted", status=self.state.status, found=True))
            return True
        if found is None or found.state is None:
            ledger.append(self.event("lost", message=reason[:500]))
            self.note(f"{self.lane.name}: batch {self.key} never reached the provider: its requests go again")
            return False
        self.state = found.state
        await ledger.append_durable(self.event("submitted", status=self.state.status, found=True))
        self.note(f"{self.lane.name}: found batch {self.state.batch_id} ({self.key}) after a lost answer")
        return True

    async def _look_up(self) -> Found | None:
        wait = self.lane.poll_s
        while True:
            try:
                return await self.lane.client.find(self.lane.session, self.key, self.submitted_at, len(self.lines))
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                self.note(
                    f"{self.lane.name}: looking up batch {self.key} failed ({exc.error_class}), again in {wait:.0f}s"
                )
                await anyio.sleep(wait)
                wait = min(max(wait * 2, 1.0), POLL_BACKOFF_MAX_S)

    async def wait_ended(self) -> BatchState:
        """Poll until the batch has ended (errors of the poll itself are waited out)."""
        assert self.state is not None
        wait = self.lane.poll_s
        while self.state.phase != "ended":
            await anyio.sleep(wait)
            try:
                self.state = await self.lane.client.poll(self.lane.session, self.state.batch_id)
                wait = self.lane.poll_s
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                wait = min(max(wait * 2, 1.0), POLL_BACKOFF_MAX_S)
                self.note(
                    f"{self.lane.name}: polling {self.state.batch_id} failed ({exc.error_class}); again in {wait:.0f}s"
                )
        return self.state

    async def collect(self, ledger: Ledger) -> list[Returned]:
        """Read an ended batch's results and write each request's attempt, then ``ended``."""
        state = self.state
        assert state is not None
        try:
            results = {r.custom_id: r for r in await self.lane.client.results(self.lane.session, state)}
        except ProviderError as exc:
            message = f"{self.lane.name}: batch {state.batch_id}: its results could not be read ({exc})"
            results = {}
            self.note(message)
        returned: list[Returned] = []
        for line in self.lines:
            result = results.get(line.custom_id) or _missing(line, state, self.lane.name)
            record = None if line.custom_id in self.recorded else self.attempt(line, result)
            if record is not None:
                ledger.append(record)
            returned.append(Returned(line, result, record))
        ledger.append(self.event("ended", status=state.status))
        return returned

    def attempt(self, line: BatchLine, result: LineResult) -> Attempt:
        """The ledger record of one request's result, priced at the batch rates."""
        usage = next((e for e in result.events if isinstance(e, Usage)), None)
        finish = next((e.reason for e in result.events if isinstance(e, Finish)), "truncated")
        out, reasoning = self.count_output(result.events) if result.outcome == "succeeded" else (0, 0)
        if result.outcome == "succeeded":
            usd, priced_from = attempt_cost(self.price, usage, line.prompt_tokens, out)
        else:
            usd, priced_from = 0.0, "unbilled"
        error = result.error
        status: AttemptStatus = "error" if result.outcome != "succeeded" else ("length" if finish == "length" else "ok")
        return Attempt(
            call_id=line.call_id,
            job_id=line.job_id,
            kind=line.kind,
            provider=self.lane.name,
            model=self.model,
            attempt=line.attempt,
            instance=line.instance,
            status=status,
            budget=line.budget,
            http_status=result.status,
            error_class=error.error_class if error is not None else None,
            error=str(error)[:500] if error is not None else None,
            input_tokens=usage.input_tokens if usage else None,
            cached_input_tokens=usage.cached_input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            cache_write_input_tokens=usage.cache_write_input_tokens if usage else None,
            input_tokens_counted=line.prompt_tokens,
            output_tokens_counted=out,
            reasoning_tokens_counted=reasoning,
            priced_from=priced_from,
            usd=usd,
            billed_usd=usage.billed_usd if usage else None,
            started_at=self.submitted_at,
            latency_s=round(time.time() - self.submitted_at, 6),
            request_id=result.request_id,
            max_output_tokens=line.max_output_tokens,
            batch_key=self.key,
            batch_id=state_id(self.state),
        )


def adopt(sub: Submission, lane: Lane, price: ModelPrice, count_output: Counted, recorded: set[str]) -> SubmissionRun:
    """An unfinished submission of an earlier process, taken over (never submitted again)."""
    run = SubmissionRun(
        lane=lane,
        model=sub.intent.model,
        key=sub.key,
        lines=sub.lines,
        reserved_usd=sub.intent.reserved_usd,
        price=price,
        count_output=count_output,
        submitted_at=sub.intent.at,
        file_id=sub.file_id,
        recorded=frozenset(line.custom_id for line in sub.lines if line.custom_id in recorded),
    )
    if sub.batch_id is not None:
        run.state = BatchState(batch_id=sub.batch_id, status="submitted", phase="queued")
    return run


def state_id(state: BatchState | None) -> str | None:
    return state.batch_id if state is not None else None


def _missing(line: BatchLine, state: BatchState, lane: str) -> LineResult:
    """A request the ended batch gave no result for: errored (retryable unless the batch failed)."""
    message = f"{lane}: batch {state.batch_id} ({state.status}) returned no result for {line.custom_id}"
    error: ProviderError = (
        FatalProviderError(message, provider=lane) if state.status == "failed" else ServerError(message, provider=lane)
    )
    return LineResult(line.custom_id, "errored", [], None, error)


async def _nothing(_file_id: str) -> None:
    return None


def reasoning_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, Reasoning))
