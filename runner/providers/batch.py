"""What every provider batch client shares: the facts it returns, and its HTTP plumbing.

A batch client speaks one provider's batch interface (providers.md §10): it submits requests,
finds a submission by our key after a crash, reads a batch's state, and reads its results. Like
an adapter it never sleeps, retries, records or prices: it returns what the provider said as
values (`BatchState`, `LineResult`; a failed HTTP call as the classified `ProviderError`), and
the engine (`runner.engine.batches`) acts on them. Each request's body is its protocol
adapter's unstreamed request (`SSEAdapter.unstreamed_payload`), and each answer is turned into
the typed events its stream would have given (`SSEAdapter.decode_unstreamed`), so a batch trace
feeds the same tokenizer a streamed one does.

A submission is known to the provider by our ``key`` (`BatchEvent.key` in the ledger): the
request file's name and the batch's metadata (OpenAI-style), the display name (Gemini). An
Anthropic batch holds no name: it is found by when it was created and how many requests it
holds, and confirmed by its requests' ``custom_id`` once its results are readable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar, Literal, NamedTuple

import aiohttp
import msgspec

from runner.errors import ProviderError
from runner.providers.classify import classify_http
from runner.providers.streaming import SSEAdapter
from runner.providers.wire import translate
from runner.types import ChatRequest, RateLimitReading, StreamEvent

Phase = Literal["queued", "running", "ended"]
Outcome = Literal["succeeded", "errored", "expired", "canceled"]
_json = msgspec.json.Encoder()
NULL = msgspec.Raw(b"null")  # an absent JSON value kept raw


def present(raw: msgspec.Raw) -> bool:
    """Whether a raw JSON value is there (neither missing nor null)."""
    return bytes(raw) not in (b"", b"null")


class LineRequest(NamedTuple):
    """One request to put in a batch, under the id its result comes back with."""

    custom_id: str
    request: ChatRequest


class BatchState(msgspec.Struct, frozen=True, kw_only=True):
    """What one look at a batch said.

    Attributes:
        batch_id: the provider's id.
        status: the provider's own word for its state (``validating``, ``in_progress``,
            ``ended``, ``BATCH_STATE_RUNNING``, ...), for people.
        phase: queued (accepted, not started), running, or ended (results readable).
        total / done / failed: its requests, those finished (any outcome), those that errored or
            expired.
        expired: it ended because its window ran out.
        results: where its results are (output and error file ids, a results URL); protocol facts.
        created_at: when the provider created it (Unix seconds; 0: not stated).
    """

    batch_id: str
    status: str
    phase: Phase
    total: int = 0
    done: int = 0
    failed: int = 0
    expired: bool = False
    results: tuple[str, ...] = ()
    created_at: float = 0.0


class Found(NamedTuple):
    """A submission looked up by our key after a crash: its batch, or only its uploaded file."""

    state: BatchState | None
    file_id: str | None = None


class LineResult(NamedTuple):
    """How one request of an ended batch came back.

    Attributes:
        custom_id: the request's id.
        outcome: succeeded (``events`` hold the answer), errored (``error`` says whether a new
            attempt may help), expired (not processed in the window), canceled.
        events: the typed events the request's stream would have given.
        status: the HTTP status of its answer (None: it got none).
        error: the classified error of an errored or expired request.
        request_id: the provider's id of the request, if it gave one.
    """

    custom_id: str
    outcome: Outcome
    events: list[StreamEvent]
    status: int | None = None
    error: ProviderError | None = None
    request_id: str | None = None


class BatchClient(ABC):
    """One batch interface, over the protocol adapter whose requests it carries."""

    interface: ClassVar[str]

    def __init__(self, adapter: SSEAdapter) -> None:
        self.adapter = adapter
        self.provider = adapter.provider

    @abstractmethod
    async def submit(
        self,
        session: aiohttp.ClientSession,
        key: str,
        lines: list[LineRequest],
        on_uploaded: Callable[[str], Awaitable[None]],
        file_id: str | None = None,
    ) -> BatchState:
        """Submit ``lines`` as one batch known by ``key``; ``on_uploaded`` hears of an uploaded
        request file before the batch is created (``file_id``: an upload a crash left, reused)."""

    @abstractmethod
    async def find(self, session: aiohttp.ClientSession, key: str, since: float, size: int) -> Found | None:
        """The submission known by ``key`` (made at or after ``since``, holding ``size``
        requests), if the provider has it; None when it never arrived."""

    @abstractmethod
    async def poll(self, session: aiohttp.ClientSession, batch_id: str) -> BatchState:
        """The batch's state now."""

    @abstractmethod
    async def results(self, session: aiohttp.ClientSession, state: BatchState) -> list[LineResult]:
        """Every request's result of an ended batch."""

    # ---- shared plumbing -------------------------------------------------------------------------

    def headers(self, content_type: str | None = "application/json") -> dict[str, str]:
        """The adapter's headers (auth, the simulator's test headers), for JSON rather than SSE."""
        extra = self.adapter.options.get("extra_headers")
        headers = {**dict(extra), **self.adapter.headers()} if isinstance(extra, dict) else self.adapter.headers()
        headers = {k: v for k, v in headers.items() if k.lower() not in ("accept", "content-type")}
        headers["accept"] = "application/json"
        if content_type:
            headers["content-type"] = content_type
        return headers

    def body(self, request: ChatRequest) -> dict[str, object]:
        """One request's body as the batch carries it (unstreamed; a simulated provider of a
        protocol with no seed field reads the seed from the body, as it has no per-request header)."""
        body = self.adapter.unstreamed_payload(request)
        if "seed_header" in self.adapter.options and request.seed is not None and "seed" not in body:
            body["seed"] = request.seed
        return body

    async def call(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        payload: object = None,
        data: aiohttp.FormData | None = None,
        during: str = "calling the batch interface",
    ) -> bytes:
        """One HTTP call of the batch interface: the body of a 2xx answer, else its classified error."""
        content_type = None if data is not None else "application/json"
        with translate(self.provider, None, during):
            async with session.request(
                method,
                url,
                data=data if data is not None else (None if payload is None else _json.encode(payload)),
                headers=self.headers(content_type),
            ) as resp:
                body = await resp.read()
                if resp.status >= 300:
                    raise classify_http(
                        self.provider, resp.status, resp.headers, body, RateLimitReading(), secret=self.adapter.secret
                    )
                return body

    def decode(self, data: bytes, kind: type[msgspec.Struct]) -> object:
        """A JSON body of the batch interface as ``kind`` (a body that is none: a broken stream)."""
        try:
            return msgspec.json.decode(data, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.adapter.broken_body(data, exc) from None

    def answer(self, custom_id: str, status: int, body: bytes, request_id: str | None = None) -> LineResult:
        """A request's answer: its events when it succeeded, else its classified error."""
        if 200 <= status < 300:
            return LineResult(custom_id, "succeeded", self.adapter.decode_unstreamed(body), status, None, request_id)
        error = classify_http(self.provider, status, {}, body, RateLimitReading(), secret=self.adapter.secret)
        return LineResult(custom_id, "errored", [], status, error, request_id)


def count(value: object) -> int:
    """A count as a provider writes it: an int, or (Gemini) a decimal string; anything else is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def first(mapping: Mapping[str, object], *names: str) -> object:
    """The first of ``names`` present in ``mapping`` (providers spell some fields two ways)."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None
