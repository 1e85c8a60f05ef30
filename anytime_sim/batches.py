"""Batch interfaces in the simulator: uploaded files, batches, and how a batch runs.

A batch is a list of requests, each with the client's ``custom_id``, that a dialect
(`anytime_sim.batch_openai`, `batch_anthropic`, `batch_gemini`) parsed from its wire format. Each
request is answered by the dialect's `Serve` exactly as the same request sent alone without
streaming would be (the same generation for the same request and seed, the same prompt cache),
billed at batch prices; the dialect renders the outcomes in its own wire format.

How a batch runs, every delay scaled by ``time_scale``: it waits in the queue for
``batch_queue_s`` (OpenAI calls this ``validating``), then runs (``in_progress``):
``batch_concurrency`` requests at a time, each taking its generation time; then it has ended.
What can go wrong, as the providers document it:

- a request errors (fault rate ``batch_error``): its outcome is a 500 error, the others go on;
- a request expires unprocessed (fault rate ``batch_expire``, or the batch's 24-hour window,
  ``batch_window_s``, runs out first): the batch ends as expired, with the outcomes it has;
- a request the dialect refuses (an unknown model, a prompt over the context window) errors
  with the status a direct request would get.

Fault draws depend on the request's bytes and its ``custom_id`` only: a client that sends the
request again under a new id draws again. Every key's batches are counted in `KeyBatches`,
including the requests it sent under a ``custom_id`` that an earlier batch already carried.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import msgspec

from anytime_sim.call import Call, Reject
from anytime_sim.faults import draw
from anytime_sim.models import BATCH_PRICE_FACTOR, SimConfig
from anytime_sim.ratelimit import key_digest
from anytime_sim.stats import BatchTokens, KeyBatches

QUEUED, RUNNING, ENDED = "queued", "in_progress", "ended"


class Request(NamedTuple):
    """One request of a batch, as the client sent it.

    Attributes:
        custom_id: the client's id for it (results are matched by it).
        body: the request body (what a direct request would POST).
        raw: the body's bytes, for the fault draws.
        target: where a direct request would go: the endpoint path (OpenAI-style) or the model
            id (Gemini).
    """

    custom_id: str
    body: dict[str, Any]
    raw: bytes
    target: str


class Outcome(NamedTuple):
    """How one request of a batch ended.

    Attributes:
        kind: ``succeeded``, ``errored``, ``expired`` or ``canceled``.
        status: the HTTP status a direct request would have got (0: never processed).
        body: the response body (succeeded) or the dialect's error body (errored); None otherwise.
    """

    kind: str
    status: int = 0
    body: dict[str, Any] | None = None


class Served(NamedTuple):
    """A dialect's answer to one request: the outcome, the seconds it took at ``time_scale`` 1,
    and what it served (None: nothing billed)."""

    outcome: Outcome
    seconds: float = 0.0
    model: str = ""
    tokens: BatchTokens | None = None


# a dialect's way of answering one request of a key's batch
Serve = Callable[[str, Request], Served]


class StoredFile(NamedTuple):
    """A file uploaded to (or written by) the OpenAI-style files API."""

    id: str
    key: str  # the owner's key digest
    filename: str
    purpose: str
    data: bytes
    created_at: int


class SimBatch:
    """One batch: its requests, its state and the outcomes so far."""

    def __init__(self, batch_id: str, dialect: str, key: str, requests: list[Request], attrs: dict[str, Any]) -> None:
        self.id = batch_id
        self.dialect = dialect
        self.key = key  # the owner's key digest
        self.requests = requests
        self.attrs = attrs  # dialect facts: endpoint, input file, metadata, display name, model
        self.created_at = time.time()
        self.ended_at: float | None = None
        self.state = QUEUED
        self.outcomes: dict[str, Outcome] = {}
        self.task: asyncio.Task[None] | None = None

    @property
    def expired(self) -> bool:
        """Some request expired before it was processed (the batch ends as expired)."""
        return any(o.kind == "expired" for o in self.outcomes.values())

    def count(self, kind: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.kind == kind)

    @property
    def processing(self) -> int:
        return len(self.requests) - len(self.outcomes)

    def ordered(self) -> Iterator[tuple[Request, Outcome]]:
        """Every request with its outcome, in the order they were sent (an ended batch only)."""
        for request in self.requests:
            yield request, self.outcomes.get(request.custom_id, Outcome("expired"))


class BatchStore:
    """Every key's files and batches, and the tasks that run the batches."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, SimBatch] = {}
        self.keys: dict[str, KeyBatches] = {}
        self._seen: dict[str, set[str]] = {}  # per key digest: every custom_id its batches carried

    def key_stats(self, api_key: str) -> KeyBatches:
        digest = key_digest(api_key)
        stats = self.keys.get(digest)
        if stats is None:
            stats = self.keys[digest] = KeyBatches()
        return stats

    def add_file(self, api_key: str, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(_new_id("file-", data), key_digest(api_key), filename, purpose, data, int(time.time()))
        self.files[stored.id] = stored
        return stored

    def file(self, api_key: str, file_id: str) -> StoredFile | None:
        """The key's own file (another key's is as good as missing)."""
        found = self.files.get(file_id)
        return found if found is not None and found.key == key_digest(api_key) else None

    def create(
        self, dialect: str, api_key: str, requests: list[Request], serve: Serve, attrs: dict[str, Any], prefix: str
    ) -> SimBatch:
        """A new batch of ``requests``, started now."""
        batch = SimBatch(_new_id(prefix, repr([r.custom_id for r in requests]).encode()), dialect, "", requests, attrs)
        batch.key = key_digest(api_key)
        self.batches[batch.id] = batch
        stats = self.key_stats(api_key)
        stats.batches += 1
        stats.requests += len(requests)
        seen = self._seen.setdefault(batch.key, set())
        stats.resubmitted += sum(1 for r in requests if r.custom_id in seen)
        seen.update(r.custom_id for r in requests)
        batch.task = asyncio.get_running_loop().create_task(self._run(batch, api_key, serve))
        return batch

    def get(self, api_key: str, batch_id: str, dialect: str) -> SimBatch | None:
        """The key's own batch of this dialect (another key's is as good as missing)."""
        found = self.batches.get(batch_id)
        if found is None or found.key != key_digest(api_key) or found.dialect != dialect:
            return None
        return found

    def listed(self, api_key: str, dialect: str) -> list[SimBatch]:
        """The key's batches of this dialect, newest first."""
        digest = key_digest(api_key)
        mine = [b for b in self.batches.values() if b.key == digest and b.dialect == dialect]
        return sorted(mine, key=lambda b: b.created_at, reverse=True)

    async def aclose(self) -> None:
        tasks = [b.task for b in self.batches.values() if b.task is not None and not b.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, batch: SimBatch, api_key: str, serve: Serve) -> None:
        scale = self.config.time_scale
        deadline = time.monotonic() + self.config.batch_window_s * scale
        await _sleep(self.config.batch_queue_s * scale)
        batch.state = RUNNING
        size = max(self.config.batch_concurrency, 1)
        for start in range(0, len(batch.requests), size):
            if scale > 0 and time.monotonic() >= deadline:
                break  # the window ran out: what is left expires
            group = batch.requests[start : start + size]
            took = max(self._serve_one(batch, api_key, serve, request) for request in group)
            await _sleep(took * scale)
        for request in batch.requests:
            if request.custom_id not in batch.outcomes:
                self._record(batch, api_key, request.custom_id, Served(Outcome("expired")))
        batch.state = ENDED
        batch.ended_at = time.time()

    def _serve_one(self, batch: SimBatch, api_key: str, serve: Serve, request: Request) -> float:
        """Answer one request (or strike it with its fault); the seconds it took at scale 1."""
        faults = self.config.faults
        roll = draw("batch", request.custom_id, hashlib.blake2b(request.raw, digest_size=16).hexdigest())
        if roll < faults.batch_expire:
            served = Served(Outcome("expired"))
        elif roll < faults.batch_expire + faults.batch_error:
            served = Served(Outcome("errored", 500, None))
        else:
            served = serve(api_key, request)
        self._record(batch, api_key, request.custom_id, served)
        return served.seconds

    def _record(self, batch: SimBatch, api_key: str, custom_id: str, served: Served) -> None:
        batch.outcomes[custom_id] = served.outcome
        stats = self.key_stats(api_key)
        kind = served.outcome.kind
        if kind == "succeeded":
            stats.succeeded += 1
        elif kind == "errored":
            stats.errored += 1
        elif kind == "expired":
            stats.expired += 1
        if served.tokens is not None:
            tally = stats.models.setdefault(served.model, BatchTokens())
            for field in BatchTokens.__struct_fields__:
                setattr(tally, field, getattr(tally, field) + getattr(served.tokens, field))


def served(call: Call, body: dict[str, Any]) -> Served:
    """A request a dialect answered: its body, how long it took and what it served (ended here)."""
    call.end(completed=True)
    output = call.served_reasoning + call.served_content
    tokens = BatchTokens(
        input_tokens=call.prompt_tokens,
        cached_input_tokens=call.cached_tokens,
        cache_write_tokens=call.cache_write_tokens,
        output_tokens=output,
    )
    price = call.model.price
    if price is not None:
        plain = call.prompt_tokens - call.cached_tokens
        usd = (plain * price[0] + call.cached_tokens * price[1] + output * price[2]) / 1e6
        tokens.usd = usd * BATCH_PRICE_FACTOR
    seconds = call.model.ttft_s + output / call.model.tokens_per_s  # at time_scale 1
    return Served(Outcome("succeeded", 200, body), seconds, call.model.name, tokens)


def refused(rejected: Reject) -> Served:
    """A request the dialect refused as a direct request would be refused: errored, unbilled."""
    response = rejected.response
    raw = response.body if isinstance(response.body, bytes) else b"{}"
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        body = {"error": {"message": raw.decode(errors="replace")}}
    return Served(Outcome("errored", response.status, body if isinstance(body, dict) else None))


def _new_id(prefix: str, seed: bytes) -> str:
    return prefix + hashlib.blake2b(seed + str(time.monotonic_ns()).encode(), digest_size=12).hexdigest()


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def rfc3339(moment: float | None) -> str | None:
    """A wall-clock time as the providers write it (None stays None)."""
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}Z"
