"""OpenAI's Batch API, which xAI and Together copy (providers.md §10): files, then a batch.

Submitting uploads the requests as a JSON Lines file named after our key (``POST /files``,
``purpose=batch``; Together: ``batch-api``), then creates the batch (``POST /batches``
``{input_file_id, endpoint, completion_window: "24h", metadata: {anytime_key}}``). Its status
goes ``validating`` → ``in_progress`` → ``finalizing`` → ``completed`` (or ``expired``,
``failed``, ``cancelled``); Together writes them in capitals. An ended batch's ``output_file_id``
holds the answered requests and its ``error_file_id`` the rest, one line each, matched by
``custom_id`` in any order: a non-2xx ``response`` (its status and body), or an ``error`` whose
code ``batch_expired`` means the window ran out first.

Found after a crash by our key: a batch whose metadata carries it (``GET /batches``), else an
uploaded file of that name (``GET /files``), whose batch is then created once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

import aiohttp
import msgspec

from runner.errors import BatchExpired, FatalProviderError
from runner.providers.batch import NULL, BatchClient, BatchState, Found, LineRequest, LineResult, Phase, present
from runner.providers.streaming import versioned

ENDED = ("completed", "expired", "failed", "cancelled")
QUEUED = ("validating",)
KEY_FIELD = "anytime_key"
LIST_PAGES = 20  # pages of 100 batches looked through for a lost submission


class _Counts(msgspec.Struct):
    total: int = 0
    completed: int = 0
    failed: int = 0


class _Batch(msgspec.Struct):
    id: str
    status: str = ""
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: float = 0.0
    request_counts: _Counts | None = None
    metadata: dict[str, str] | None = None


class _Batches(msgspec.Struct):
    data: list[_Batch] = []
    has_more: bool = False


class _File(msgspec.Struct):
    id: str
    filename: str = ""
    created_at: float = 0.0


class _Files(msgspec.Struct):
    data: list[_File] = []


class _LineError(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class _LineResponse(msgspec.Struct):
    status_code: int = 0
    request_id: str | None = None
    body: msgspec.Raw = NULL  # a Raw cannot be Optional: JSON null stays null


class _Line(msgspec.Struct):
    custom_id: str
    response: _LineResponse | None = None
    error: _LineError | None = None


_line_decoder = msgspec.json.Decoder(_Line)


class OpenAIBatchClient(BatchClient):
    """``/files`` + ``/batches`` over the Chat Completions or Responses adapter.

    Adapter options it reads: ``batch_purpose`` (the files API's ``purpose``, default
    ``batch``; Together's is ``batch-api``).
    """

    interface: ClassVar[str] = "openai"

    @property
    def root(self) -> str:
        return versioned(self.adapter.base_url)

    @property
    def endpoint(self) -> str:
        return "/v1/responses" if self.adapter.protocol == "openai_responses" else "/v1/chat/completions"

    def request_file(self, lines: list[LineRequest]) -> bytes:
        """The JSON Lines input file: one ``{custom_id, method, url, body}`` a line."""
        rows = [
            msgspec.json.encode({"custom_id": c, "method": "POST", "url": self.endpoint, "body": self.body(r)})
            for c, r in lines
        ]
        return b"\n".join(rows) + b"\n"

    async def submit(
        self,
        session: aiohttp.ClientSession,
        key: str,
        lines: list[LineRequest],
        on_uploaded: Callable[[str], Awaitable[None]],
        file_id: str | None = None,
    ) -> BatchState:
        if file_id is None:
            form = aiohttp.FormData()
            form.add_field("purpose", str(self.adapter.options.get("batch_purpose", "batch")))
            form.add_field("file", self.request_file(lines), filename=f"{key}.jsonl", content_type="application/jsonl")
            raw = await self.call(session, "POST", f"{self.root}/files", data=form, during="uploading the batch")
            uploaded = self.decode(raw, _File)
            assert isinstance(uploaded, _File)
            file_id = uploaded.id
            await on_uploaded(file_id)
        payload = {
            "input_file_id": file_id,
            "endpoint": self.endpoint,
            "completion_window": "24h",
            "metadata": {KEY_FIELD: key},
        }
        raw = await self.call(session, "POST", f"{self.root}/batches", payload=payload, during="creating the batch")
        return self._state(raw)

    async def find(self, session: aiohttp.ClientSession, key: str, since: float, size: int) -> Found | None:
        after: str | None = None
        for _ in range(LIST_PAGES):
            query = f"?limit=100&after={after}" if after else "?limit=100"
            page = self.decode(await self.call(session, "GET", f"{self.root}/batches{query}"), _Batches)
            assert isinstance(page, _Batches)
            for batch in page.data:
                if (batch.metadata or {}).get(KEY_FIELD) == key:
                    return Found(_as_state(batch))
            if not page.has_more or not page.data or page.data[-1].created_at < since - 3600:
                break
            after = page.data[-1].id
        files = self.decode(await self.call(session, "GET", f"{self.root}/files?purpose=batch"), _Files)
        assert isinstance(files, _Files)
        uploaded = next((f for f in files.data if f.filename == f"{key}.jsonl"), None)
        return Found(None, uploaded.id) if uploaded is not None else None

    async def poll(self, session: aiohttp.ClientSession, batch_id: str) -> BatchState:
        return self._state(await self.call(session, "GET", f"{self.root}/batches/{batch_id}", during="polling"))

    async def results(self, session: aiohttp.ClientSession, state: BatchState) -> list[LineResult]:
        out: list[LineResult] = []
        for file_id in state.results:
            raw = await self.call(session, "GET", f"{self.root}/files/{file_id}/content", during="reading results")
            out += [self._line(line) for line in raw.splitlines() if line.strip()]
        return out

    def _state(self, raw: bytes) -> BatchState:
        batch = self.decode(raw, _Batch)
        assert isinstance(batch, _Batch)
        return _as_state(batch)

    def _line(self, line: bytes) -> LineResult:
        try:
            item = _line_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self.adapter.broken_body(line, exc) from None
        response = item.response
        if response is not None and present(response.body):
            return self.answer(item.custom_id, response.status_code, bytes(response.body), response.request_id)
        error = item.error or _LineError()
        message = f"{self.provider}: batch request {item.custom_id}: {error.code}: {error.message or ''}"
        if error.code == "batch_expired":
            return LineResult(item.custom_id, "expired", [], None, BatchExpired(message, provider=self.provider))
        return LineResult(item.custom_id, "errored", [], None, FatalProviderError(message, provider=self.provider))


def _as_state(batch: _Batch) -> BatchState:
    status = batch.status.lower()
    counts = batch.request_counts or _Counts()
    phase: Phase = "ended" if status in ENDED else "queued" if status in QUEUED else "running"
    return BatchState(
        batch_id=batch.id,
        status=status,
        phase=phase,
        total=counts.total,
        done=counts.completed + counts.failed,
        failed=counts.failed,
        expired=status == "expired",
        results=tuple(f for f in (batch.output_file_id, batch.error_file_id) if f),
        created_at=batch.created_at,
    )
