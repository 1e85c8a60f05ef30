"""Anthropic's Message Batches: ``POST /v1/messages/batches`` ``{requests: [{custom_id, params}]}``,
``GET /v1/messages/batches/{id}``, ``GET /v1/messages/batches`` (newest first) and, once the
batch has ended, ``GET /v1/messages/batches/{id}/results`` (JSON Lines, one
``{"custom_id", "result": {"type": "succeeded" | "errored" | "expired" | "canceled", ...}}`` each).

``processing_status`` goes ``in_progress`` → ``ended``; ``request_counts`` says how many are
processing, succeeded, errored, canceled and expired. A ``custom_id`` is 1 to 64 letters, digits,
``-`` or ``_``. Each request is answered as `anytime_sim.anthropic` answers it unstreamed,
prompt cache breakpoints included (the batch discount stacks with prompt caching), at batch prices.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from anytime_sim import anthropic
from anytime_sim.anthropic import AnthropicErrors
from anytime_sim.batches import ENDED, Request, Served, SimBatch, refused, rfc3339, served
from anytime_sim.call import Reject, bearer_key
from anytime_sim.server import SIM_KEY, Simulator

CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_REQUESTS = 100_000
_errors = AnthropicErrors()


def _key(request: web.Request) -> str:
    key = request.headers.get("x-api-key") or bearer_key(request)
    if not key:
        raise Reject(_errors(401, "authentication", "x-api-key header is required", {}))
    return key


def _requests(body: object) -> list[Request]:
    """The batch's requests.

    Raises:
        ValueError: the body is not ``{requests: [...]}``, a ``custom_id`` is malformed or
            repeated, or a request asks to stream.
    """
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_REQUESTS:
        raise ValueError(f"requests: expected a list of 1 to {MAX_REQUESTS} requests")
    requests: list[Request] = []
    for i, item in enumerate(items):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
            raise ValueError(f"requests.{i}.custom_id: 1-64 letters, digits, '-' or '_', got {custom_id!r}")
        if not isinstance(params, dict) or params.get("stream"):
            raise ValueError(f"requests.{i}.params: a Messages request that does not stream")
        requests.append(Request(custom_id, params, msgspec.json.encode(params), "/v1/messages"))
    ids = [r.custom_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("requests: custom_id values must be unique within a batch")
    return requests


async def create_batch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        key = _key(request)
        requests = _requests(await request.json())
    except Reject as rejected:
        return rejected.response
    except ValueError as exc:
        return _errors(400, "invalid_request", str(exc), {})
    batch = sim.batches.create("anthropic", key, requests, lambda k, r: _serve(sim, k, r), {}, "msgbatch_")
    return web.json_response(_batch_object(sim, batch, request))


def _serve(sim: Simulator, key: str, request: Request) -> Served:
    try:
        req, cap, prompt = anthropic.parse_request(request.body, _errors)
        call = sim.admit_batch(req, cap, request.raw, _errors, key, caching=False)
    except Reject as rejected:
        return refused(rejected)
    anthropic.explicit_cache(sim, call, prompt, key)
    return served(call, anthropic.complete_body(call))


async def get_batch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        batch = sim.batches.get(_key(request), request.match_info["batch_id"], "anthropic")
    except Reject as rejected:
        return rejected.response
    if batch is None:
        return _errors(404, "not_found", f"message batch {request.match_info['batch_id']!r} not found", {})
    return web.json_response(_batch_object(sim, batch, request))


async def list_batches(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        data = [_batch_object(sim, b, request) for b in sim.batches.listed(_key(request), "anthropic")]
    except Reject as rejected:
        return rejected.response
    return web.json_response(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def results(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        batch = sim.batches.get(_key(request), request.match_info["batch_id"], "anthropic")
    except Reject as rejected:
        return rejected.response
    if batch is None:
        return _errors(404, "not_found", f"message batch {request.match_info['batch_id']!r} not found", {})
    if batch.state != ENDED:
        return _errors(400, "invalid_request", "results are available once the batch has ended", {})
    lines = [msgspec.json.encode(_result(r.custom_id, o.kind, o.body)) for r, o in batch.ordered()]
    return web.Response(body=b"\n".join(lines) + b"\n", content_type="application/binary")


def _result(custom_id: str, kind: str, body: dict[str, Any] | None) -> dict[str, object]:
    if kind == "succeeded":
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": body}}
    if kind == "errored":
        error = (body or {}).get("error") or {"type": "api_error", "message": "Internal server error"}
        return {"custom_id": custom_id, "result": {"type": "errored", "error": {"type": "error", "error": error}}}
    return {"custom_id": custom_id, "result": {"type": kind}}


def _batch_object(sim: Simulator, batch: SimBatch, request: web.Request) -> dict[str, object]:
    ended = batch.state == ENDED
    base = f"{request.scheme}://{request.host}"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {
            "processing": batch.processing,
            "succeeded": batch.count("succeeded"),
            "errored": batch.count("errored"),
            "canceled": batch.count("canceled"),
            "expired": batch.count("expired"),
        },
        "ended_at": rfc3339(batch.ended_at),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.created_at + sim.config.batch_window_s),
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages/batches", create_batch)
    app.router.add_get("/v1/messages/batches", list_batches)
    app.router.add_get("/v1/messages/batches/{batch_id}", get_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", results)
