"""Gemini's Batch Mode with inline requests: ``POST /v1beta/models/{model}:batchGenerateContent``
``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request", "metadata":
{"key"}}]}}}}`` answers a long-running operation ``{"name": "batches/…", "metadata": {…},
"done": false}``; ``GET /v1beta/batches/{id}`` polls it and ``GET /v1beta/batches`` lists them
(``{"operations": [...]}``, newest first).

The batch's ``state`` goes ``BATCH_STATE_PENDING`` → ``BATCH_STATE_RUNNING`` →
``BATCH_STATE_SUCCEEDED`` (or ``BATCH_STATE_EXPIRED``), with ``batchStats``. Once done, the
operation's ``response.inlinedResponses.inlinedResponses`` holds one ``{"response"}`` or
``{"error"}`` per request, in the order the requests were sent, each with the request's
``metadata``. Each request is answered as `anytime_sim.gemini` answers ``generateContent``, at
batch prices; batches get no implicit prompt caching (Google documents none for them).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from anytime_sim import gemini
from anytime_sim.batches import ENDED, QUEUED, Request, Served, SimBatch, refused, rfc3339, served
from anytime_sim.call import Reject
from anytime_sim.gemini import GeminiErrors
from anytime_sim.server import SIM_KEY, Simulator

_errors = GeminiErrors()
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


def _key(request: web.Request) -> str:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise Reject(_errors(401, "authentication", "API key not valid. Please pass a valid API key.", {}))
    return key


async def model_route(request: web.Request) -> web.StreamResponse:
    """``/v1beta/models/{model}:{method}``: a batch, or a direct request (`anytime_sim.gemini`)."""
    model, _, method = request.match_info["target"].partition(":")
    if method != "batchGenerateContent":
        return await gemini.handle(request)
    sim = request.app[SIM_KEY]
    try:
        key = _key(request)
        body = await request.json()
        requests, name = _requests(body, model)
    except Reject as rejected:
        return rejected.response
    except ValueError as exc:
        return _errors(400, "invalid_request", str(exc), {})
    attrs = {"model": model, "display_name": name}
    batch = sim.batches.create("gemini", key, requests, lambda k, r: _serve(sim, k, r), attrs, "batches/")
    return web.json_response(_operation(batch))


def _requests(body: object, model: str) -> tuple[list[Request], str]:
    """The inline requests (each ``custom_id`` is its metadata ``key``) and the display name.

    Raises:
        ValueError: the body is not a batch of inline requests.
    """
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, dict):
        raise ValueError("batch: required")
    config = batch.get("inputConfig") or batch.get("input_config") or {}
    outer = config.get("requests") if isinstance(config, dict) else None
    items = outer.get("requests") if isinstance(outer, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError("batch.inputConfig.requests.requests: a non-empty list of inline requests is required")
    requests: list[Request] = []
    for i, item in enumerate(items):
        inner = item.get("request") if isinstance(item, dict) else None
        if not isinstance(inner, dict):
            raise ValueError(f"batch.inputConfig.requests.requests[{i}].request: required")
        meta = item.get("metadata") or {}
        key = str(meta.get("key", i)) if isinstance(meta, dict) else str(i)
        requests.append(Request(key, inner, msgspec.json.encode(inner), model))
    name = str(batch.get("displayName") or batch.get("display_name") or "")
    return requests, name


def _serve(sim: Simulator, key: str, request: Request) -> Served:
    try:
        req, cap, include_thoughts = gemini.parse_request(request.target, request.body, _errors)
        call = sim.admit_batch(req, cap, request.raw, _errors, key, caching=False)
    except Reject as rejected:
        return refused(rejected)
    return served(call, gemini.complete_body(call, "summary" if include_thoughts else "hidden"))


async def get_batch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        batch = sim.batches.get(_key(request), "batches/" + request.match_info["batch_id"], "gemini")
    except Reject as rejected:
        return rejected.response
    if batch is None:
        return _errors(404, "not_found", f"batches/{request.match_info['batch_id']} not found", {})
    return web.json_response(_operation(batch))


async def list_batches(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        operations = [_operation(b) for b in sim.batches.listed(_key(request), "gemini")]
    except Reject as rejected:
        return rejected.response
    return web.json_response({"operations": operations})


def _state(batch: SimBatch) -> str:
    if batch.state == QUEUED:
        return "BATCH_STATE_PENDING"
    if batch.state != ENDED:
        return "BATCH_STATE_RUNNING"
    return "BATCH_STATE_EXPIRED" if batch.expired else "BATCH_STATE_SUCCEEDED"


def _operation(batch: SimBatch) -> dict[str, object]:
    ended = batch.state == ENDED
    failed = batch.count("errored") + batch.count("expired")
    metadata = {
        "@type": _BATCH_TYPE,
        "name": batch.id,
        "model": f"models/{batch.attrs['model']}",
        "displayName": batch.attrs["display_name"],
        "createTime": rfc3339(batch.created_at),
        "endTime": rfc3339(batch.ended_at),
        "state": _state(batch),
        "batchStats": {
            "requestCount": str(len(batch.requests)),
            "successfulRequestCount": str(batch.count("succeeded")),
            "failedRequestCount": str(failed),
            "pendingRequestCount": str(batch.processing),
        },
    }
    operation: dict[str, object] = {"name": batch.id, "metadata": metadata, "done": ended}
    if ended:
        responses = [_inlined(r.custom_id, o.kind, o.status, o.body) for r, o in batch.ordered()]
        operation["response"] = {"@type": _OUTPUT_TYPE, "inlinedResponses": {"inlinedResponses": responses}}
    return operation


def _inlined(key: str, kind: str, status: int, body: dict[str, Any] | None) -> dict[str, object]:
    meta = {"key": key}
    if kind == "succeeded":
        return {"response": body, "metadata": meta}
    if kind == "expired":
        error = {
            "code": 4,
            "message": "The batch expired before this request was processed.",
            "status": "DEADLINE_EXCEEDED",
        }
        return {"error": error, "metadata": meta}
    inner = (body or {}).get("error") or {"code": 500, "message": "Internal error", "status": "INTERNAL"}
    return {
        "error": {
            "code": inner.get("code", status),
            "message": inner.get("message", ""),
            "status": inner.get("status", "INTERNAL"),
        },
        "metadata": meta,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1beta/batches", list_batches)
    app.router.add_get("/v1beta/batches/{batch_id}", get_batch)
