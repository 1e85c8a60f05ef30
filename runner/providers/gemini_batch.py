"""Gemini's Batch Mode with inline requests (providers.md §10): ``POST
/models/{model}:batchGenerateContent`` ``{"batch": {"displayName", "inputConfig": {"requests":
{"requests": [{"request", "metadata": {"key"}}]}}}}`` starts a long-running operation;
``GET /{name}`` (``batches/…``) polls it, ``GET /batches`` lists them. Its ``state`` goes
``BATCH_STATE_PENDING`` → ``_RUNNING`` → ``_SUCCEEDED`` (``_FAILED``, ``_CANCELLED``,
``_EXPIRED``; SDKs write ``JOB_STATE_*``), with ``batchStats`` counts written as strings. Once
done, ``response.inlinedResponses.inlinedResponses`` holds one ``response`` or ``error`` per
request in the order they were sent (each with its ``metadata``, which we match by when present).

Our key is the batch's display name: a submission lost in a crash is found by it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

import aiohttp
import msgspec

from runner.errors import BatchExpired
from runner.providers.batch import NULL, BatchClient, BatchState, Found, LineRequest, LineResult, Phase, count, present
from runner.providers.classify import ErrorDetail
from runner.providers.streaming import SSEAdapter

_ENDED = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")


class _Stats(msgspec.Struct):
    requestCount: str | int = 0
    successfulRequestCount: str | int = 0
    failedRequestCount: str | int = 0
    pendingRequestCount: str | int = 0


class _Meta(msgspec.Struct):
    name: str = ""
    displayName: str = ""
    state: str = ""
    batchStats: _Stats | None = None


class _Inlined(msgspec.Struct):
    response: msgspec.Raw = NULL  # a Raw cannot be Optional: JSON null stays null
    error: ErrorDetail | None = None
    metadata: dict[str, object] | None = None


class _InlinedList(msgspec.Struct):
    inlinedResponses: list[_Inlined] = []


class _Output(msgspec.Struct):
    inlinedResponses: _InlinedList | None = None


class _Operation(msgspec.Struct):
    name: str = ""
    metadata: _Meta | None = None
    done: bool = False
    response: _Output | None = None


class _Operations(msgspec.Struct):
    operations: list[_Operation] = []
    nextPageToken: str | None = None


class GeminiBatchClient(BatchClient):
    """``batchGenerateContent`` over the Gemini adapter (its payloads, its response decoder)."""

    interface: ClassVar[str] = "gemini"

    def __init__(self, adapter: SSEAdapter) -> None:
        super().__init__(adapter)
        self._sent: dict[str, list[str]] = {}  # batch name -> custom ids in the order sent

    @property
    def root(self) -> str:
        base = self.adapter.base_url
        return base if base.rsplit("/", 1)[-1].startswith("v1") else f"{base}/v1beta"

    async def submit(
        self,
        session: aiohttp.ClientSession,
        key: str,
        lines: list[LineRequest],
        on_uploaded: Callable[[str], Awaitable[None]],
        file_id: str | None = None,
    ) -> BatchState:
        model = lines[0].request.model
        requests = [{"request": self.body(r), "metadata": {"key": c}} for c, r in lines]
        payload = {"batch": {"displayName": key, "inputConfig": {"requests": {"requests": requests}}}}
        url = f"{self.root}/models/{model}:batchGenerateContent"
        state = self._state(await self.call(session, "POST", url, payload=payload, during="creating the batch"))
        self._sent[state.batch_id] = [c for c, _ in lines]
        return state

    async def find(self, session: aiohttp.ClientSession, key: str, since: float, size: int) -> Found | None:
        page = self.decode(await self.call(session, "GET", f"{self.root}/batches?pageSize=100"), _Operations)
        assert isinstance(page, _Operations)
        for op in page.operations:
            if op.metadata is not None and op.metadata.displayName == key:
                return Found(_as_state(op))
        return None

    async def poll(self, session: aiohttp.ClientSession, batch_id: str) -> BatchState:
        return self._state(await self.call(session, "GET", f"{self.root}/{batch_id}", during="polling"))

    async def results(self, session: aiohttp.ClientSession, state: BatchState) -> list[LineResult]:
        raw = await self.call(session, "GET", f"{self.root}/{state.batch_id}", during="reading results")
        op = self.decode(raw, _Operation)
        assert isinstance(op, _Operation)
        inlined = op.response.inlinedResponses.inlinedResponses if op.response and op.response.inlinedResponses else []
        sent = self._sent.get(state.batch_id, [])
        out: list[LineResult] = []
        for i, item in enumerate(inlined):
            meta_key = (item.metadata or {}).get("key")
            custom_id = str(meta_key) if meta_key is not None else (sent[i] if i < len(sent) else str(i))
            out.append(self._item(custom_id, item))
        return out

    def _item(self, custom_id: str, item: _Inlined) -> LineResult:
        if present(item.response):
            return self.answer(custom_id, 200, bytes(item.response))
        error = item.error or ErrorDetail()
        if error.status == "DEADLINE_EXCEEDED":
            message = f"{self.provider}: batch request {custom_id} expired: {error.message or ''}"
            return LineResult(custom_id, "expired", [], None, BatchExpired(message, provider=self.provider))
        status = error.code if isinstance(error.code, int) and error.code >= 400 else 500
        return self.answer(custom_id, status, msgspec.json.encode({"error": error}))

    def _state(self, raw: bytes) -> BatchState:
        op = self.decode(raw, _Operation)
        assert isinstance(op, _Operation)
        return _as_state(op)


def _as_state(op: _Operation) -> BatchState:
    meta = op.metadata or _Meta()
    state = meta.state.rsplit("_", 1)[-1]  # BATCH_STATE_RUNNING / JOB_STATE_RUNNING -> RUNNING
    stats = meta.batchStats or _Stats()
    total = count(stats.requestCount)
    ended = op.done or state in _ENDED
    phase: Phase = "ended" if ended else "queued" if state == "PENDING" else "running"
    return BatchState(
        batch_id=op.name or meta.name,
        status=meta.state,
        phase=phase,
        total=total,
        done=total - count(stats.pendingRequestCount),
        failed=count(stats.failedRequestCount),
        expired=state == "EXPIRED",
    )
