"""OpenAI's Batch API (also xAI's and Together's, which copy it): files and batches.

``POST /v1/files`` (multipart: ``purpose``, ``file``: a JSONL file, one request a line
``{"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/responses", "body"}``),
``GET /v1/files`` (``?purpose=``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``;
``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window: "24h"``,
``metadata``), ``GET /v1/batches/{id}``, ``GET /v1/batches`` (newest first). A batch's status
goes ``validating`` → ``in_progress`` → ``completed`` (or ``expired``); once it has ended its
``output_file_id`` holds the answered requests and ``error_file_id`` the others (a non-2xx
answer with its status and body, or ``error.code = "batch_expired"``), one line each, matched by
``custom_id``. Each request is answered by the dialect that serves it directly
(`anytime_sim.openai_chat`, `anytime_sim.openai_responses`), at batch prices.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import msgspec
from aiohttp import web

from anytime_sim import openai_chat, openai_responses
from anytime_sim.batches import ENDED, Outcome, Request, Served, SimBatch, StoredFile, refused, served
from anytime_sim.call import Reject, bearer_key
from anytime_sim.openai_chat import OpenAIErrors
from anytime_sim.server import SIM_KEY, Simulator

ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
_errors = OpenAIErrors(None)


def _key(request: web.Request) -> str:
    key = bearer_key(request)
    if not key:
        raise Reject(_errors(401, "authentication", "No API key provided.", {}))
    return key


def _file_object(stored: StoredFile) -> dict[str, object]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.data),
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
    }


async def upload_file(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        key = _key(request)
        form = await request.post()
    except Reject as rejected:
        return rejected.response
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField) or not isinstance(purpose, str):
        return _errors(400, "invalid_request", "a multipart body with `purpose` and `file` is required", {})
    stored = sim.batches.add_file(key, upload.filename or "upload.jsonl", purpose, upload.file.read())
    return web.json_response(_file_object(stored))


async def list_files(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        key = _key(request)
    except Reject as rejected:
        return rejected.response
    purpose = request.query.get("purpose")
    mine = [f for f in sim.batches.files.values() if sim.batches.file(key, f.id) and purpose in (None, f.purpose)]
    mine.sort(key=lambda f: f.created_at, reverse=True)
    return web.json_response({"object": "list", "data": [_file_object(f) for f in mine], "has_more": False})


async def get_file(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        stored = sim.batches.file(_key(request), request.match_info["file_id"])
    except Reject as rejected:
        return rejected.response
    if stored is None:
        return _errors(404, "not_found", f"No such File object: {request.match_info['file_id']}", {})
    if request.match_info.get("content"):
        return web.Response(body=stored.data, content_type="application/jsonl")
    return web.json_response(_file_object(stored))


def _requests(data: bytes) -> tuple[list[Request], str]:
    """The requests of an input file and their one endpoint.

    Raises:
        ValueError: a line is not a request, names another endpoint, or repeats a ``custom_id``.
    """
    requests: list[Request] = []
    urls: set[str] = set()
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
            raise ValueError(f"line {number}: expected custom_id, method, url and body")
        custom_id, url = item.get("custom_id"), item.get("url")
        if not isinstance(custom_id, str) or not custom_id:
            raise ValueError(f"line {number}: custom_id must be a non-empty string")
        if url not in ENDPOINTS:
            raise ValueError(f"line {number}: url must be one of {', '.join(ENDPOINTS)}, got {url!r}")
        urls.add(url)
        requests.append(Request(custom_id, item["body"], msgspec.json.encode(item["body"]), url))
    ids = [r.custom_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("custom_id values must be unique within a batch")
    if not requests or len(urls) != 1:
        raise ValueError("the file must hold at least one request, all for the same endpoint")
    return requests, urls.pop()


async def create_batch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        key = _key(request)
        body = await request.json()
    except Reject as rejected:
        return rejected.response
    except ValueError:
        return _errors(400, "invalid_request", "We could not parse the JSON body of your request.", {})
    if not isinstance(body, dict) or body.get("completion_window") != "24h":
        return _errors(400, "invalid_request", "completion_window must be '24h'", {})
    stored = sim.batches.file(key, str(body.get("input_file_id", "")))
    if stored is None:
        return _errors(404, "not_found", f"No such File object: {body.get('input_file_id')}", {})
    try:
        requests, endpoint = _requests(stored.data)
    except ValueError as exc:
        return _errors(400, "invalid_request", f"{stored.filename}: {exc}", {})
    if body.get("endpoint") != endpoint:
        return _errors(400, "invalid_request", f"endpoint {body.get('endpoint')!r} does not match the file's", {})
    attrs = {"endpoint": endpoint, "input_file_id": stored.id, "metadata": body.get("metadata") or None}
    batch = sim.batches.create("openai", key, requests, lambda k, r: _serve(sim, k, r), attrs, "batch_")
    return web.json_response(_batch_object(sim, batch))


def _serve(sim: Simulator, key: str, request: Request) -> Served:
    body = request.body
    model = sim.config.models.get(str(body.get("model", "")))
    errors = OpenAIErrors(model.profile if model else None)
    try:
        if request.target == "/v1/responses":
            req, cap, summary = openai_responses.parse_request(body, errors)
            call = sim.admit_batch(req, cap, request.raw, errors, key)
            return served(call, openai_responses.complete_body(call, openai_responses.view_of(call, summary)))
        req, cap = openai_chat.parse_request(body, errors, model)
        call = sim.admit_batch(req, cap, request.raw, errors, key)
    except Reject as rejected:
        return refused(rejected)
    openai_chat.adapt_profile(call, cap)
    return served(call, openai_chat.complete_body(call))


async def get_batch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        batch = sim.batches.get(_key(request), request.match_info["batch_id"], "openai")
    except Reject as rejected:
        return rejected.response
    if batch is None:
        return _errors(404, "not_found", f"No batch found with id '{request.match_info['batch_id']}'.", {})
    return web.json_response(_batch_object(sim, batch))


async def list_batches(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        key = _key(request)
    except Reject as rejected:
        return rejected.response
    data = [_batch_object(sim, b) for b in sim.batches.listed(key, "openai")]
    return web.json_response({"object": "list", "data": data, "has_more": False})


def _status(batch: SimBatch) -> str:
    if batch.state != ENDED:
        return "validating" if batch.state == "queued" else "in_progress"
    return "expired" if batch.expired else "completed"


def _batch_object(sim: Simulator, batch: SimBatch) -> dict[str, object]:
    ended = batch.state == ENDED
    if ended and "output_file_id" not in batch.attrs:
        _write_results(sim, batch)
    failed = batch.count("errored") + batch.count("expired")
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.attrs["endpoint"],
        "errors": None,
        "input_file_id": batch.attrs["input_file_id"],
        "completion_window": "24h",
        "status": _status(batch),
        "output_file_id": batch.attrs.get("output_file_id"),
        "error_file_id": batch.attrs.get("error_file_id"),
        "created_at": int(batch.created_at),
        "in_progress_at": int(batch.created_at) if batch.state != "queued" else None,
        "expires_at": int(batch.created_at + sim.config.batch_window_s),
        "completed_at": int(batch.ended_at) if ended and batch.ended_at and not batch.expired else None,
        "expired_at": int(batch.ended_at) if ended and batch.ended_at and batch.expired else None,
        "request_counts": {"total": len(batch.requests), "completed": batch.count("succeeded"), "failed": failed},
        "metadata": batch.attrs.get("metadata"),
    }


def _line(custom_id: str, outcome: Outcome) -> dict[str, Any]:
    request_id = "req_" + hashlib.blake2b(custom_id.encode(), digest_size=8).hexdigest()
    head = {"id": "batch_req_" + request_id[4:], "custom_id": custom_id}
    if outcome.kind == "expired":
        message = "This request could not be executed before the completion window expired."
        return {**head, "response": None, "error": {"code": "batch_expired", "message": message}}
    body = outcome.body
    if outcome.kind == "errored" and body is None:
        body = {"error": {"message": "The server had an error processing the request.", "type": "server_error"}}
    response = {"status_code": outcome.status, "request_id": request_id, "body": body}
    return {**head, "response": response, "error": None}


def _write_results(sim: Simulator, batch: SimBatch) -> None:
    """The output and error files of an ended batch, written once."""
    good: list[bytes] = []
    bad: list[bytes] = []
    for request, outcome in batch.ordered():
        (good if outcome.kind == "succeeded" else bad).append(msgspec.json.encode(_line(request.custom_id, outcome)))
    files = sim.batches.files
    for name, lines in (("output_file_id", good), ("error_file_id", bad)):
        if not lines:
            batch.attrs[name] = None
            continue
        stored = StoredFile(
            id=f"file-{batch.id}-{name[:-8]}",
            key=batch.key,
            filename=f"{batch.id}_{name[:-8]}.jsonl",
            purpose="batch_output",
            data=b"\n".join(lines) + b"\n",
            created_at=int(time.time()),
        )
        files[stored.id] = stored
        batch.attrs[name] = stored.id


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/files", upload_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", get_file)
    app.router.add_get("/v1/files/{file_id}/{content:content}", get_file)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
