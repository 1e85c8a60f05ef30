"""Anthropic's Message Batches (providers.md §10): ``POST /messages/batches`` ``{requests:
[{custom_id, params}]}``; ``processing_status`` goes ``in_progress`` → ``ended`` (``canceling``);
``request_counts`` says how many are processing, succeeded, errored, canceled and expired; an
ended batch's ``results_url`` serves JSON Lines ``{custom_id, result: {type: succeeded |
errored | expired | canceled, ...}}`` in any order. Batches expire after 24 hours; results are
kept 29 days. The batch discount stacks with prompt caching, so requests keep their
``cache_control`` breakpoints.

A Message Batch carries no name or metadata, so a submission lost in a crash is looked for among
the batches created since its intent was written that hold as many requests; the engine confirms
it by its requests' ``custom_id`` once its results are readable (`BatchEngine`).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

import aiohttp
import msgspec

from runner.errors import BatchExpired, ServerError
from runner.providers.anthropic import API_VERSION
from runner.providers.batch import NULL, BatchClient, BatchState, Found, LineRequest, LineResult, present
from runner.providers.classify import ErrorDetail

CLOCK_SKEW_S = 300.0  # a batch created this long before its intent was written still counts as found


class _Counts(msgspec.Struct):
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


class _Batch(msgspec.Struct):
    id: str
    processing_status: str = ""
    request_counts: _Counts | None = None
    results_url: str | None = None
    created_at: str | None = None


class _Batches(msgspec.Struct):
    data: list[_Batch] = []
    has_more: bool = False
    last_id: str | None = None


class _Error(msgspec.Struct):
    type: str | None = None
    error: ErrorDetail | None = None


class _Result(msgspec.Struct):
    type: str = ""
    message: msgspec.Raw = NULL  # a Raw cannot be Optional: JSON null stays null
    error: _Error | None = None


class _Line(msgspec.Struct):
    custom_id: str
    result: _Result


_line_decoder = msgspec.json.Decoder(_Line)


class AnthropicBatchClient(BatchClient):
    """``/messages/batches`` over the Messages adapter (its payloads, its response decoder)."""

    interface: ClassVar[str] = "anthropic"

    @property
    def root(self) -> str:
        base = self.adapter.base_url
        return f"{base if base.endswith('/v1') else base + '/v1'}/messages/batches"

    def headers(self, content_type: str | None = "application/json") -> dict[str, str]:
        return {**super().headers(content_type), "anthropic-version": API_VERSION}

    async def submit(
        self,
        session: aiohttp.ClientSession,
        key: str,
        lines: list[LineRequest],
        on_uploaded: Callable[[str], Awaitable[None]],
        file_id: str | None = None,
    ) -> BatchState:
        payload = {"requests": [{"custom_id": c, "params": self.body(r)} for c, r in lines]}
        return self._state(await self.call(session, "POST", self.root, payload=payload, during="creating the batch"))

    async def find(self, session: aiohttp.ClientSession, key: str, since: float, size: int) -> Found | None:
        page = self.decode(await self.call(session, "GET", f"{self.root}?limit=100"), _Batches)
        assert isinstance(page, _Batches)
        candidates = [
            _as_state(b) for b in page.data if _total(b) == size and _created(b.created_at) >= since - CLOCK_SKEW_S
        ]
        # the oldest candidate made after the intent: the one this process's predecessor sent
        candidates.sort(key=lambda s: s.created_at)
        return Found(candidates[0]) if candidates else None

    async def poll(self, session: aiohttp.ClientSession, batch_id: str) -> BatchState:
        return self._state(await self.call(session, "GET", f"{self.root}/{batch_id}", during="polling"))

    async def results(self, session: aiohttp.ClientSession, state: BatchState) -> list[LineResult]:
        url = state.results[0] if state.results else f"{self.root}/{state.batch_id}/results"
        raw = await self.call(session, "GET", url, during="reading results")
        return [self._line(line) for line in raw.splitlines() if line.strip()]

    def _state(self, raw: bytes) -> BatchState:
        batch = self.decode(raw, _Batch)
        assert isinstance(batch, _Batch)
        return _as_state(batch)

    def _line(self, line: bytes) -> LineResult:
        try:
            item = _line_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.adapter.broken_body(line, exc) from None
        result = item.result
        if result.type == "succeeded" and present(result.message):
            return self.answer(item.custom_id, 200, bytes(result.message))
        if result.type == "errored":
            detail = (result.error.error if result.error else None) or ErrorDetail()
            body = msgspec.json.encode({"error": detail})
            status = 500 if detail.type in (None, "api_error", "overloaded_error") else 400
            return self.answer(item.custom_id, status, body)
        message = f"{self.provider}: batch request {item.custom_id} {result.type}"
        if result.type == "expired":
            return LineResult(item.custom_id, "expired", [], None, BatchExpired(message, provider=self.provider))
        return LineResult(item.custom_id, "canceled", [], None, ServerError(message, provider=self.provider))


def _total(batch: _Batch) -> int:
    c = batch.request_counts or _Counts()
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired


def _created(stamp: str | None) -> float:
    """RFC 3339 as Unix seconds (0 when missing or unreadable)."""
    if not stamp:
        return 0.0
    try:
        parsed = time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0.0
    return float(calendar.timegm(parsed))


def _as_state(batch: _Batch) -> BatchState:
    c = batch.request_counts or _Counts()
    ended = batch.processing_status == "ended"
    return BatchState(
        batch_id=batch.id,
        status=batch.processing_status,
        phase="ended" if ended else "running",
        total=_total(batch),
        done=_total(batch) - c.processing,
        failed=c.errored + c.expired + c.canceled,
        expired=ended and c.expired > 0,
        results=(batch.results_url,) if batch.results_url else (),
        created_at=_created(batch.created_at),
    )
