"""``POST /v1/messages``: Anthropic Messages with extended thinking (``providers.md`` §4).

Events: ``message_start`` → per block ``content_block_start`` / ``content_block_delta``* /
``content_block_stop`` (a thinking block with ``thinking_delta``s and one ``signature_delta``,
then a text block) → ``message_delta`` (stop reason, cumulative ``output_tokens``) →
``message_stop``. A ``ping`` follows the first block start. Models of the ``anthropic`` profile
stream a summary of their thinking while ``output_tokens`` counts all of it (Claude 4).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, NamedTuple

import msgspec
from aiohttp import web

from anytime_sim.cache import EXPLICIT_MINIMUM, MAX_BREAKPOINTS
from anytime_sim.call import Call, ErrorFormat, Reject, bearer_key, open_stream
from anytime_sim.ratelimit import Admission, anthropic_headers, retry_headers
from anytime_sim.server import SIM_KEY, Simulator, cache_scope
from anytime_sim.stream import EventWriter, Piece, call_pieces, drive
from anytime_sim.trace import GenRequest

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicErrors(ErrorFormat):
    def __call__(
        self,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str],
        admission: Admission | None = None,
    ) -> web.Response:
        if kind == "server" and status == 503:
            status = 529  # Anthropic's overloaded status
        body = {
            "type": "error",
            "error": {"type": _TYPES.get(status, "api_error"), "message": message},
            "request_id": "req_sim",
        }
        limits = anthropic_headers(admission.state) if admission is not None else {}
        return web.json_response(body, status=status, headers={**limits, **headers})

    def rate_limited(self, model: str, admission: Admission, cost: int) -> web.Response:
        message = f"This request would exceed the rate limit for {model} ({admission.reason or 'requests'})."
        headers = retry_headers(max(admission.retry_after_s, 0.001))
        if admission.reason == "too_large":
            headers = {"x-should-retry": "false"}
        return self(429, "rate_limit", message, headers, admission)


def _blocks(content: object) -> list[tuple[str, bool]]:
    """A turn's text blocks, each with whether it carries a ``cache_control`` breakpoint."""
    if isinstance(content, str):
        return [(content, False)]
    if isinstance(content, list):
        return [
            (str(b.get("text", "")), bool(b.get("cache_control")))
            for b in content
            if isinstance(b, dict) and b.get("type", "text") == "text"
        ]
    return []


class Prompt(NamedTuple):
    """A request's prompt as turns of text blocks, and which blocks end at a breakpoint."""

    turns: tuple[tuple[str, tuple[str, ...]], ...]  # (role, block texts)
    breakpoints: tuple[int, ...]  # block numbers, counting blocks across turns

    def messages(self) -> tuple[tuple[str, str], ...]:
        return tuple((role, "".join(blocks)) for role, blocks in self.turns)


def parse_prompt(body: dict[str, Any], messages: list[Any]) -> Prompt:
    turns: list[tuple[str, tuple[str, ...]]] = []
    marks: list[bool] = []
    sources = [("system", body["system"])] if body.get("system") else []
    sources += [(str(m.get("role", "user")), m.get("content")) for m in messages if isinstance(m, dict)]
    for role, content in sources:
        blocks = _blocks(content)
        turns.append((role, tuple(text for text, _ in blocks)))
        marks += [marked for _, marked in blocks]
    return Prompt(tuple(turns), tuple(i for i, marked in enumerate(marks) if marked))


def parse_request(body: dict[str, Any], errors: AnthropicErrors) -> tuple[GenRequest, int, Prompt]:
    """The request, its output cap, and its prompt as blocks with their cache breakpoints."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Reject(errors(400, "invalid_request", "messages: field required (a non-empty list)", {}))
    cap = body.get("max_tokens")
    if not isinstance(cap, int) or cap <= 0:
        raise Reject(errors(400, "invalid_request", f"max_tokens: expected a positive integer, got {cap!r}", {}))
    thinking = body.get("thinking") or {}
    enabled = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    budget = thinking.get("budget_tokens") if enabled else None
    if enabled and (not isinstance(budget, int) or budget < 1024 or budget >= cap):
        raise Reject(
            errors(
                400,
                "invalid_request",
                f"thinking.budget_tokens: must be >= 1024 and less than max_tokens ({cap}), got {budget!r}",
                {},
            )
        )
    prompt = parse_prompt(body, messages)
    if len(prompt.breakpoints) > MAX_BREAKPOINTS:
        found = len(prompt.breakpoints)
        message = f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        raise Reject(errors(400, "invalid_request", message, {}))
    # the Messages API has no seed; the simulator takes one from a top-level "seed" or ``x-sim-seed``
    seed = body.get("seed")
    req = GenRequest(
        model=str(body.get("model", "")),
        messages=prompt.messages(),
        seed=seed if isinstance(seed, int) else None,
        max_output=cap,
        reasoning_budget=budget,
        reasoning_on=enabled,
        prefill=_prefill(prompt, enabled, errors),
    )
    return req, cap, prompt


def _prefill(prompt: Prompt, thinking: bool, errors: AnthropicErrors) -> str | None:
    """A final assistant turn, which the response continues ("prefill"), refused as Anthropic
    refuses it: with trailing whitespace, or with extended thinking on."""
    role, text = prompt.messages()[-1]
    if role != "assistant":
        return None
    if text != text.rstrip():
        raise Reject(
            errors(400, "invalid_request", "messages: final assistant content cannot end with trailing whitespace", {})
        )
    if thinking:
        message = "messages: a final assistant message cannot be prefilled while thinking is enabled"
        raise Reject(errors(400, "invalid_request", message, {}))
    return text


def explicit_cache(sim: Simulator, call: Call, prompt: Prompt, key: str) -> None:
    """Reads and writes at the request's breakpoints (Anthropic caches nothing else)."""
    if not prompt.breakpoints:
        return
    tokens, ends = sim.logic.block_tokens(prompt.turns)
    use = sim.cache.explicit(cache_scope(call.model.name, key), tokens, ends, prompt.breakpoints, EXPLICIT_MINIMUM)
    # the prompt's own count joins each turn's blocks before encoding: never report more than it
    call.cached_tokens = min(use.read, call.prompt_tokens)
    call.cache_write_tokens = min(use.written, call.prompt_tokens - call.cached_tokens)
    call.cache_pending = use.pending
    call.tally.add("cached_input_tokens", call.cached_tokens)
    if call.batch:
        call.tally.add("batch_cached_input_tokens", call.cached_tokens)


async def handle(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    errors = AnthropicErrors()
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw)
        if not isinstance(body, dict):
            raise ValueError
    except (msgspec.DecodeError, ValueError):
        return errors(400, "invalid_request", "The request body is not a valid JSON object.", {})
    try:
        req, cap, prompt = parse_request(body, errors)
        key = request.headers.get("x-api-key") or bearer_key(request)  # newer SDKs send the key as a bearer token
        call = await sim.admit(request, req, cap, raw, errors, key, caching=False)
    except Reject as rejected:
        return rejected.response
    explicit_cache(sim, call, prompt, key or "")
    try:
        if body.get("stream"):
            return await _stream(request, call)
        return await _complete(call)
    finally:
        call.end(completed=call.served_reasoning + call.served_content >= call.plan.output_tokens)


def _input_usage(call: Call) -> dict[str, int]:
    # Anthropic's input_tokens leaves out both cache reads and cache writes
    return {
        "input_tokens": call.prompt_tokens - call.cached_tokens - call.cache_write_tokens,
        "cache_creation_input_tokens": call.cache_write_tokens,
        "cache_read_input_tokens": call.cached_tokens,
    }


def _view(call: Call) -> str:
    return "summary" if call.model.profile == "anthropic" else "raw"


def _headers(call: Call) -> dict[str, str]:
    return {"request-id": call.request_id, **anthropic_headers(call.admission.state)}


def _stop_reason(call: Call) -> str:
    return "max_tokens" if call.plan.finish == "length" else "end_turn"


def _signature(call: Call) -> str:
    return base64.b64encode(f"sim-signature-{call.id}".encode()).decode()


class _Blocks:
    """Opens and closes content blocks as pieces change kind."""

    def __init__(self, call: Call, writer: EventWriter) -> None:
        self.call, self.writer = call, writer
        self.index = -1
        self.open: str | None = None
        self.extra = "unknown_fields" in call.modes

    async def send(self, name: str, data: dict[str, object]) -> None:
        if self.extra:
            data = {**data, "x_sim_extra": 1}
        await self.writer.event(msgspec.json.encode({"type": name, **data}), name)

    async def start(self, kind: str) -> None:
        await self.close()
        self.index += 1
        self.open = kind
        block = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking"
            else {"type": "text", "text": ""}
        )
        await self.send("content_block_start", {"index": self.index, "content_block": block})
        if self.index == 0:
            await self.send("ping", {})

    async def close(self) -> None:
        if self.open == "thinking":
            delta = {"type": "signature_delta", "signature": _signature(self.call)}
            await self.send("content_block_delta", {"index": self.index, "delta": delta})
        if self.open is not None:
            await self.send("content_block_stop", {"index": self.index})
        self.open = None

    async def piece(self, piece: Piece) -> None:
        if piece.kind == "hidden":
            return
        kind = "thinking" if piece.kind == "reasoning" else "text"
        if self.open != kind:
            await self.start(kind)
        delta = (
            {"type": "thinking_delta", "thinking": piece.text}
            if kind == "thinking"
            else {"type": "text_delta", "text": piece.text}
        )
        await self.send("content_block_delta", {"index": self.index, "delta": delta})


async def _stream(request: web.Request, call: Call) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **_headers(call)}
    )
    await open_stream(request, response)
    blocks: _Blocks

    async def ping() -> None:  # Anthropic keeps a silent stream alive with ping events
        await blocks.send("ping", {})

    writer = EventWriter(response, call.modes, call.rng, keepalive_s=call.keepalive_s, keepalive=ping)
    blocks = _Blocks(call, writer)
    message: dict[str, object] = {
        "id": f"msg_{call.id}",
        "type": "message",
        "role": "assistant",
        "model": call.model.name,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**_input_usage(call), "output_tokens": 1},
    }
    await blocks.send("message_start", {"message": message})

    async def emit_error() -> None:
        await blocks.send("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})

    async def emit_malformed() -> None:
        await writer.raw(
            b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n'
        )

    items = list(call_pieces(call, _view(call)))
    if not await drive(call, request, writer, items, blocks.piece, emit_error, emit_malformed):
        return response
    if blocks.open is None and call.plan.content_tokens == 0 and call.plan.reasoning_tokens == 0:
        await blocks.start("text")
    await blocks.close()
    usage = {"output_tokens": call.served_reasoning + call.served_content}
    await blocks.send(
        "message_delta", {"delta": {"stop_reason": _stop_reason(call), "stop_sequence": None}, "usage": usage}
    )
    call.usage_reported()
    await blocks.send("message_stop", {})
    await response.write_eof()
    return response


async def _complete(call: Call) -> web.Response:
    if call.sim.config.time_scale > 0:
        await asyncio.sleep(call.pacer.total_s(call.plan.output_tokens))
    body = complete_body(call)
    return web.Response(body=msgspec.json.encode(body), content_type="application/json", headers=_headers(call))


def complete_body(call: Call) -> dict[str, object]:
    """The whole Message of a request that does not stream (the call serves all of it)."""
    p = call.plan
    decode = call.sim.logic.encoding.decode
    content: list[dict[str, str]] = []
    if p.reasoning_tokens:
        shown = list(call_pieces(call, _view(call), whole=True))
        thinking = "".join(x.text for x in shown if x.kind == "reasoning")
        content.append({"type": "thinking", "thinking": thinking, "signature": _signature(call)})
    content.append({"type": "text", "text": decode(call.generation.content[: p.content_tokens])})
    call.served("reasoning", p.reasoning_tokens)
    call.served("content", p.content_tokens)
    body: dict[str, object] = {
        "id": f"msg_{call.id}",
        "type": "message",
        "role": "assistant",
        "model": call.model.name,
        "content": content,
        "stop_reason": _stop_reason(call),
        "stop_sequence": None,
        "usage": {**_input_usage(call), "output_tokens": p.output_tokens},
    }
    call.usage_reported()
    return body
