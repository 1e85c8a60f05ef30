"""``POST /v1/responses``: the OpenAI Responses API (``providers.md`` §2).

Every event carries an ``event:`` line equal to its ``type`` and an increasing
``sequence_number``. Reasoning models show a reasoning *summary* when ``reasoning.summary`` is
asked for (``vllm``-profile models stream raw ``response.reasoning_text.delta`` instead); the
usage counts all reasoning tokens. Hitting ``max_output_tokens`` ends with
``response.incomplete`` (reason ``max_output_tokens``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from anytime_sim.call import Call, Reject, bearer_key, open_stream
from anytime_sim.openai_chat import OpenAIErrors
from anytime_sim.server import SIM_KEY
from anytime_sim.stream import EventWriter, Piece, call_pieces, drive
from anytime_sim.trace import GenRequest


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def parse_request(body: dict[str, Any], errors: OpenAIErrors) -> tuple[GenRequest, int | None, bool]:
    raw_input = body.get("input")
    turns: list[tuple[str, str]] = []
    if body.get("instructions"):
        turns.append(("system", str(body["instructions"])))
    if isinstance(raw_input, str):
        turns.append(("user", raw_input))
    elif isinstance(raw_input, list):
        turns += [(str(m.get("role", "user")), _text(m.get("content"))) for m in raw_input if isinstance(m, dict)]
    if not turns or not any(role == "user" for role, _ in turns):
        raise Reject(
            errors(400, "invalid_request", "`input` must be a string or a list of messages with a user turn", {})
        )
    cap = body.get("max_output_tokens")
    if cap is not None and (not isinstance(cap, int) or cap < 16):
        raise Reject(errors(400, "invalid_request", f"`max_output_tokens` must be an integer >= 16, got {cap!r}", {}))
    asked = body.get("reasoning")
    reasoning: dict[str, Any] = asked if isinstance(asked, dict) else {}
    seed = body.get("seed")
    req = GenRequest(
        model=str(body.get("model", "")),
        messages=tuple(turns),
        seed=seed if isinstance(seed, int) else None,
        max_output=cap,
        effort=reasoning.get("effort"),
    )
    return req, cap, bool(reasoning.get("summary"))


async def handle(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw)
        if not isinstance(body, dict):
            raise ValueError
    except (msgspec.DecodeError, ValueError):
        return OpenAIErrors(None)(400, "invalid_request", "We could not parse the JSON body of your request.", {})
    model = sim.config.models.get(str(body.get("model", "")))
    errors = OpenAIErrors(model.profile if model else None)
    try:
        req, cap, summary = parse_request(body, errors)
        call = await sim.admit(request, req, cap, raw, errors, bearer_key(request))
    except Reject as rejected:
        return rejected.response
    view = view_of(call, summary)
    try:
        if body.get("stream"):
            return await _stream(request, call, errors, view)
        return await _complete(call, errors, view)
    finally:
        call.end(completed=call.served_reasoning + call.served_content >= call.plan.output_tokens)


class _Events:
    """The Responses event sequence of one call, with its output items as they grow."""

    def __init__(self, call: Call, writer: EventWriter | None, view: str) -> None:
        self.call, self.writer, self.view = call, writer, view
        self.seq = 0
        self.rs_id, self.msg_id = f"rs_{call.id}", f"msg_{call.id}"
        self.reasoning_text: list[str] = []
        self.text: list[str] = []
        self.open: str | None = None
        self.output: list[dict[str, object]] = []

    async def send(self, data: dict[str, object]) -> None:
        assert self.writer is not None
        data = {**data, "sequence_number": self.seq}
        self.seq += 1
        if "unknown_fields" in self.call.modes:
            data["x_sim_extra"] = True
        await self.writer.event(msgspec.json.encode(data), str(data["type"]))

    def response(self, status: str) -> dict[str, object]:
        call = self.call
        usage: dict[str, object] | None = None
        if status != "in_progress":
            r, c = call.served_reasoning, call.served_content
            usage = {
                "input_tokens": call.prompt_tokens,
                "input_tokens_details": {"cached_tokens": call.cached_tokens},
                "output_tokens": r + c,
                "output_tokens_details": {"reasoning_tokens": r},
                "total_tokens": call.prompt_tokens + r + c,
            }
        return {
            "id": f"resp_{call.id}",
            "object": "response",
            "created_at": call.created,
            "model": call.model.name,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "output": self.output if status != "in_progress" else [],
            "usage": usage,
            "max_output_tokens": call.cap,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }

    def _reasoning_item(self) -> dict[str, object]:
        text = "".join(self.reasoning_text)
        if self.view == "raw":
            return {
                "id": self.rs_id,
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": text}],
            }
        summary = [{"type": "summary_text", "text": text}] if text else []
        return {"id": self.rs_id, "type": "reasoning", "summary": summary}

    def _message_item(self, status: str) -> dict[str, object]:
        return {
            "id": self.msg_id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [{"type": "output_text", "text": "".join(self.text), "annotations": []}],
        }

    async def open_reasoning(self) -> None:
        self.open = "reasoning"
        await self.send(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"id": self.rs_id, "type": "reasoning", "summary": []},
            }
        )
        if self.view == "summary":
            await self.send(
                {
                    "type": "response.reasoning_summary_part.added",
                    "item_id": self.rs_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                }
            )

    async def close_reasoning(self) -> None:
        text = "".join(self.reasoning_text)
        if self.view == "summary":
            await self.send(
                {
                    "type": "response.reasoning_summary_text.done",
                    "item_id": self.rs_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "text": text,
                }
            )
            await self.send(
                {
                    "type": "response.reasoning_summary_part.done",
                    "item_id": self.rs_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": text},
                }
            )
        elif self.view == "raw":
            await self.send(
                {
                    "type": "response.reasoning_text.done",
                    "item_id": self.rs_id,
                    "output_index": 0,
                    "content_index": 0,
                    "text": text,
                }
            )
        item = self._reasoning_item()
        self.output.append(item)
        await self.send({"type": "response.output_item.done", "output_index": 0, "item": item})
        self.open = None

    async def open_message(self) -> None:
        if self.open == "reasoning":
            await self.close_reasoning()
        self.open = "message"
        index = len(self.output)
        await self.send(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {
                    "id": self.msg_id,
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                },
            }
        )
        await self.send(
            {
                "type": "response.content_part.added",
                "item_id": self.msg_id,
                "output_index": index,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            }
        )

    async def close_message(self) -> None:
        index, text = len(self.output), "".join(self.text)
        await self.send(
            {
                "type": "response.output_text.done",
                "item_id": self.msg_id,
                "output_index": index,
                "content_index": 0,
                "text": text,
            }
        )
        await self.send(
            {
                "type": "response.content_part.done",
                "item_id": self.msg_id,
                "output_index": index,
                "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": []},
            }
        )
        item = self._message_item("completed" if self.call.plan.finish == "stop" else "incomplete")
        self.output.append(item)
        await self.send({"type": "response.output_item.done", "output_index": index, "item": item})
        self.open = None

    async def piece(self, piece: Piece) -> None:
        if piece.kind == "content":
            if self.open != "message":
                await self.open_message()
            self.text.append(piece.text)
            await self.send(
                {
                    "type": "response.output_text.delta",
                    "item_id": self.msg_id,
                    "output_index": len(self.output),
                    "content_index": 0,
                    "delta": piece.text,
                    "logprobs": [],
                }
            )
            return
        if self.open != "reasoning":
            await self.open_reasoning()
        if piece.kind == "hidden" or not piece.text:
            return
        self.reasoning_text.append(piece.text)
        if self.view == "summary":
            await self.send(
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": self.rs_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "delta": piece.text,
                }
            )
        else:
            await self.send(
                {
                    "type": "response.reasoning_text.delta",
                    "item_id": self.rs_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece.text,
                }
            )

    async def finish(self) -> None:
        if self.open == "reasoning":
            await self.close_reasoning()
        elif self.open == "message":
            await self.close_message()
        status = "completed" if self.call.plan.finish == "stop" else "incomplete"
        await self.send({"type": f"response.{status}", "response": self.response(status)})
        self.call.usage_reported()


def _headers(call: Call, errors: OpenAIErrors) -> dict[str, str]:
    return {"x-request-id": call.request_id, **errors._headers(call.admission)}


async def _stream(request: web.Request, call: Call, errors: OpenAIErrors, view: str) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **_headers(call, errors),
        }
    )
    await open_stream(request, response)
    writer = EventWriter(response, call.modes, call.rng, keepalive_s=call.keepalive_s)
    events = _Events(call, writer, view)
    await events.send({"type": "response.created", "response": events.response("in_progress")})
    await events.send({"type": "response.in_progress", "response": events.response("in_progress")})

    async def emit_error() -> None:
        await events.send(
            {"type": "error", "code": "server_error", "message": "The server had an error.", "param": None}
        )

    async def emit_malformed() -> None:
        await writer.raw(b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "de\n\n')

    items = list(call_pieces(call, view))
    if await drive(call, request, writer, items, events.piece, emit_error, emit_malformed):
        await events.finish()
        await response.write_eof()
    return response


async def _complete(call: Call, errors: OpenAIErrors, view: str) -> web.Response:
    if call.sim.config.time_scale > 0:
        await asyncio.sleep(call.pacer.total_s(call.plan.output_tokens))
    body = complete_body(call, view)
    return web.Response(body=msgspec.json.encode(body), content_type="application/json", headers=_headers(call, errors))


def complete_body(call: Call, view: str) -> dict[str, object]:
    """The whole Response object of a request that does not stream (the call serves all of it)."""
    p = call.plan
    events = _Events(call, None, view)
    for piece in call_pieces(call, view, whole=True):
        call.served(piece.kind, piece.billed)
        (events.text if piece.kind == "content" else events.reasoning_text).append(piece.text)
    if p.reasoning_tokens:
        events.output.append(events._reasoning_item())
    if p.content_tokens:
        events.output.append(events._message_item("completed" if p.finish == "stop" else "incomplete"))
    status = "completed" if p.finish == "stop" else "incomplete"
    body = {**events.response(status), "output_text": "".join(events.text)}
    call.usage_reported()
    return body


def view_of(call: Call, summary: bool) -> str:
    """How a call's reasoning shows: raw on gpt-oss hosts, a summary when asked, else hidden."""
    return "raw" if call.model.profile == "vllm" else ("summary" if summary else "hidden")
