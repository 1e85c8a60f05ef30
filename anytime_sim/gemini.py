"""``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (and ``:generateContent``).

Gemini's shape (``providers.md`` §5): each SSE event is ``data: <GenerateContentResponse>``, no
event names and no ``[DONE]``. Thoughts arrive as parts with ``"thought": true`` when
``thinkingConfig.includeThoughts`` is set; the last event has ``finishReason`` (``STOP`` or
``MAX_TOKENS``) and ``usageMetadata`` whose ``candidatesTokenCount`` excludes the thoughts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from anytime_sim.call import Call, ErrorFormat, Reject, open_stream
from anytime_sim.ratelimit import Admission, retry_headers
from anytime_sim.server import SIM_KEY
from anytime_sim.stream import EventWriter, Piece, call_pieces, drive
from anytime_sim.trace import GenRequest

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiErrors(ErrorFormat):
    def __call__(
        self,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str],
        admission: Admission | None = None,
    ) -> web.Response:
        body = {"error": {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL")}}
        return web.json_response(body, status=status, headers=headers)

    def rate_limited(self, model: str, admission: Admission, cost: int) -> web.Response:
        wait = max(admission.retry_after_s, 0.001)
        body = {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": f"Resource has been exhausted (quota for {model}, {admission.reason}).",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait:.3f}s"}],
            }
        }
        return web.json_response(body, status=429, headers=retry_headers(wait))


def parse_request(model: str, body: dict[str, Any], errors: GeminiErrors) -> tuple[GenRequest, int | None, bool]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Reject(errors(400, "invalid_request", "contents: must be a non-empty list", {}))
    turns: list[tuple[str, str]] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, dict):
        turns.append(("system", "".join(p.get("text", "") for p in system.get("parts", []) if isinstance(p, dict))))
    for item in contents:
        if isinstance(item, dict):
            text = "".join(p.get("text", "") for p in item.get("parts", []) if isinstance(p, dict))
            turns.append(("assistant" if item.get("role") == "model" else "user", text))
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or {}
    cap = config.get("maxOutputTokens")
    if cap is not None and (not isinstance(cap, int) or cap <= 0):
        raise Reject(
            errors(
                400,
                "invalid_request",
                f"generationConfig.maxOutputTokens: expected a positive integer, got {cap!r}",
                {},
            )
        )
    budget = thinking.get("thinkingBudget")
    seed = config.get("seed")
    req = GenRequest(
        model=model,
        messages=tuple(turns),
        seed=seed if isinstance(seed, int) else None,
        max_output=cap,
        reasoning_budget=budget if isinstance(budget, int) and budget > 0 else None,
        reasoning_on=budget != 0,
    )
    return req, cap, bool(thinking.get("includeThoughts"))


async def handle(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    errors = GeminiErrors()
    model, _, method = request.match_info["target"].partition(":")
    if method not in ("streamGenerateContent", "generateContent"):
        return errors(404, "not_found", f"unknown method {method!r} (streamGenerateContent or generateContent)", {})
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw)
        if not isinstance(body, dict):
            raise ValueError
    except (msgspec.DecodeError, ValueError):
        return errors(400, "invalid_request", "Invalid JSON payload received.", {})
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    try:
        req, cap, include_thoughts = parse_request(model, body, errors)
        call = await sim.admit(request, req, cap, raw, errors, key)
    except Reject as rejected:
        return rejected.response
    view = "summary" if include_thoughts else "hidden"
    try:
        if method == "streamGenerateContent":
            return await _stream(request, call, view)
        return await _complete(call, view)
    finally:
        call.end(completed=call.served_reasoning + call.served_content >= call.plan.output_tokens)


def _usage(call: Call) -> dict[str, int]:
    r, c = call.served_reasoning, call.served_content
    usage = {
        "promptTokenCount": call.prompt_tokens,
        "candidatesTokenCount": c,
        "totalTokenCount": call.prompt_tokens + r + c,
    }
    if r:
        usage["thoughtsTokenCount"] = r
    if call.cached_tokens:
        usage["cachedContentTokenCount"] = call.cached_tokens
    return usage


def _response(call: Call, parts: list[dict[str, object]], final: bool) -> dict[str, object]:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": parts}, "index": 0}
    body: dict[str, object] = {"candidates": [candidate], "modelVersion": call.model.name, "responseId": call.id}
    if final:
        candidate["finishReason"] = "STOP" if call.plan.finish == "stop" else "MAX_TOKENS"
        body["usageMetadata"] = _usage(call)
    if "unknown_fields" in call.modes:
        body["x_sim_extra"] = {"ignored": True}
    return body


async def _stream(request: web.Request, call: Call, view: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await open_stream(request, response)
    writer = EventWriter(response, call.modes, call.rng, keepalive_s=call.keepalive_s)

    async def emit(piece: Piece) -> None:
        if piece.kind == "hidden" or not piece.text:
            return
        part: dict[str, object] = (
            {"text": piece.text, "thought": True} if piece.kind == "reasoning" else {"text": piece.text}
        )
        await writer.event(msgspec.json.encode(_response(call, [part], final=False)))

    async def emit_error() -> None:
        await writer.event(
            msgspec.json.encode(
                {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            )
        )

    async def emit_malformed() -> None:
        await writer.raw(b'data: {"candidates": [{"content": {"parts": [{"text": "cut\n\n')

    items = list(call_pieces(call, view))
    if await drive(call, request, writer, items, emit, emit_error, emit_malformed):
        await writer.event(msgspec.json.encode(_response(call, [{"text": ""}], final=True)))
        call.usage_reported()
        await response.write_eof()
    return response


async def _complete(call: Call, view: str) -> web.Response:
    if call.sim.config.time_scale > 0:
        await asyncio.sleep(call.pacer.total_s(call.plan.output_tokens))
    return web.json_response(complete_body(call, view))


def complete_body(call: Call, view: str) -> dict[str, object]:
    """The whole GenerateContentResponse of a request that does not stream (``view``: how its
    thoughts show, ``summary`` or ``hidden``)."""
    thought: list[str] = []
    text: list[str] = []
    for piece in call_pieces(call, view, whole=True):
        call.served(piece.kind, piece.billed)
        (text if piece.kind == "content" else thought).append(piece.text)
    parts: list[dict[str, object]] = ([{"text": "".join(thought), "thought": True}] if "".join(thought) else []) + [
        {"text": "".join(text)}
    ]
    body = _response(call, parts, final=True)
    call.usage_reported()
    return body
