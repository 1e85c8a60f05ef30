"""``POST /v1/chat/completions``: OpenAI Chat Completions and its compatible hosts' quirks.

Shapes follow ``providers.md`` §1 and §3: a first chunk with the role, delta chunks, a finish
chunk with an empty delta, the usage chunk with ``choices: []`` when
``stream_options.include_usage`` is set (every other chunk then has ``"usage": null``), and
``data: [DONE]``. Per-profile differences live in `_Profile`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from anytime_sim.call import Call, ContextOverflow, ErrorFormat, Reject, bearer_key, open_stream
from anytime_sim.models import BATCH_PRICE_FACTOR, SimModel
from anytime_sim.pacing import plan
from anytime_sim.ratelimit import Admission, openai_headers, retry_headers
from anytime_sim.server import SIM_KEY
from anytime_sim.stream import EventWriter, Piece, call_pieces, drive
from anytime_sim.trace import Generation, GenRequest

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "overloaded"),
}
_NO_LIMIT_HEADERS = ("vllm", "llamacpp")


class OpenAIErrors(ErrorFormat):
    def __init__(self, profile: str | None) -> None:
        self.limit_headers = profile not in _NO_LIMIT_HEADERS
        self.profile = profile

    def _headers(self, admission: Admission | None) -> dict[str, str]:
        return openai_headers(admission.state) if admission is not None and self.limit_headers else {}

    def __call__(
        self,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str],
        admission: Admission | None = None,
    ) -> web.Response:
        body: dict[str, object]
        if kind == "context":
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            }
            return web.json_response(body, status=status, headers=headers)
        if kind == "invalid_request" and self.profile == "llamacpp":
            # llama-cpp-python reports request validation errors as 500s (real_server.md, quirk 5)
            body = {"error": {"message": message, "type": "internal_server_error", "param": None, "code": None}}
            return web.json_response(body, status=500, headers=headers)
        etype, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
        return web.json_response(body, status=status, headers={**self._headers(admission), **headers})

    def rate_limited(self, model: str, admission: Admission, cost: int) -> web.Response:
        state = admission.state
        if admission.reason == "too_large":
            message = (
                f"Request too large for {model} on tokens per min (TPM): Limit {state.limit_tokens}, "
                f"Requested {cost}. Lower the prompt or the output cap."
            )
            headers = {"x-should-retry": "false"}
        elif admission.reason == "tokens":
            used = (state.limit_tokens or 0) - (state.remaining_tokens or 0)
            message = (
                f"Rate limit reached for {model} in organization org-sim on tokens per min (TPM): "
                f"Limit {state.limit_tokens}, Used {used}, Requested {cost}. "
                f"Please try again in {admission.retry_after_s:.3g}s."
            )
            headers = retry_headers(admission.retry_after_s)
        elif admission.reason == "storm":
            message = (
                f"Rate limit reached for {model} in organization org-sim: the organization's capacity is "
                f"in use. Please try again in {admission.retry_after_s:.3g}s."
            )
            headers = retry_headers(admission.retry_after_s)
        else:
            wait = max(admission.retry_after_s, 0.001)
            message = (
                f"Rate limit reached for {model} in organization org-sim on requests per min (RPM): "
                f"Limit {state.limit_requests}. Please try again in {wait:.3g}s."
            )
            headers = retry_headers(wait)
        body = {
            "error": {
                "message": message,
                "type": "requests" if admission.reason in ("requests", "storm") else "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        return web.json_response(body, status=429, headers={**self._headers(admission), **headers})


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _unsupported(body: dict[str, Any], model: SimModel | None) -> str | None:
    """What a real host of this profile would refuse in the request (providers.md §1.1, §3)."""
    if body.get("n", 1) != 1:
        return "The simulator serves one choice per request (`n` must be 1)."
    if model is None:
        return None
    effort, temperature = body.get("reasoning_effort"), body.get("temperature")
    if model.profile == "openai_hidden":
        if "max_tokens" in body:
            return (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            )
        if temperature not in (None, 1, 1.0):
            return (
                f"Unsupported value: 'temperature' does not support {temperature} with this model. "
                "Only the default (1) value is supported."
            )
    if effort is not None and not model.reasoning and model.profile in ("openai", "xai"):
        return f"Unrecognized request argument: reasoning_effort is not supported by {model.name}"
    if effort is not None and model.reasoning and model.profile == "xai" and effort not in ("low", "high"):
        return f"Invalid reasoning_effort {effort!r} for {model.name}: expected 'low' or 'high'"
    return None


def parse_request(body: dict[str, Any], errors: OpenAIErrors, model: SimModel | None) -> tuple[GenRequest, int | None]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Reject(errors(400, "invalid_request", "`messages` must be a non-empty list", {}))
    problem = _unsupported(body, model)
    if problem is not None:
        raise Reject(errors(400, "invalid_request", problem, {}))
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if cap is not None and (not isinstance(cap, int) or cap <= 0):
        raise Reject(
            errors(400, "invalid_request", f"`max_completion_tokens` must be a positive integer, got {cap!r}", {})
        )
    seed = body.get("seed")
    req = GenRequest(
        model=str(body.get("model", "")),
        messages=tuple((str(m.get("role", "user")), _text(m.get("content"))) for m in messages if isinstance(m, dict)),
        seed=seed if isinstance(seed, int) else None,
        max_output=cap,
        effort=body.get("reasoning_effort"),
    )
    return req, cap


def _reasoning_view(profile: str) -> str:
    return {"openai_hidden": "hidden", "together": "inline"}.get(profile, "raw")


def cost_ticks(price: tuple[float, float, float], prompt: int, cached: int, output: int) -> int:
    """xAI's ``cost_in_usd_ticks`` (1e-10 USD) for USD-per-1M prices (input, cached input, output)."""
    usd = ((prompt - cached) * price[0] + cached * price[1] + output * price[2]) / 1e6
    return round(usd * 1e10)


class _Chunks:
    """Builds the chunk JSON of one stream (the constant parts encoded once)."""

    def __init__(self, call: Call, include_usage: bool) -> None:
        self.call = call
        self.profile = call.model.profile
        self.include_usage = include_usage and self.profile != "llamacpp"
        self.extra = "unknown_fields" in call.modes
        self.head = {
            "id": f"chatcmpl-{call.id}",
            "object": "chat.completion.chunk",
            "created": call.created,
            "model": call.model.name,
            "system_fingerprint": "fp_sim0001",
        }
        self.field = "reasoning" if self.profile == "vllm" else "reasoning_content"
        self._templates: dict[str, tuple[bytes, bytes]] = {}

    def chunk(self, delta: dict[str, str], finish: str | None = None) -> bytes:
        choice: dict[str, object] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body: dict[str, object] = {**self.head, "choices": [choice]}
        if self.include_usage:
            body["usage"] = None
        if self.extra:
            body["obfuscation"] = "x1y2z3"
            choice["x_sim_extra"] = {"note": "unknown fields must be ignored"}
        return msgspec.json.encode(body)

    def first(self) -> bytes:
        return self.chunk({"role": "assistant"} if self.profile == "llamacpp" else {"role": "assistant", "content": ""})

    def piece(self, piece: Piece) -> bytes:
        field = self.field if piece.kind == "reasoning" else "content"
        if self.extra:
            return self.chunk({field: piece.text})
        # the hot path (hundreds of thousands of chunks in a benchmark): splice the text into
        # bytes encoded once per stream and field, byte-identical to `chunk`
        template = self._templates.get(field)
        if template is None:
            marker = "\x00"
            whole = self.chunk({field: marker}).split(msgspec.json.encode(marker))
            template = self._templates[field] = (whole[0], whole[1])
        return template[0] + msgspec.json.encode(piece.text) + template[1]

    def usage(self) -> dict[str, object]:
        call = self.call
        r, c = call.served_reasoning, call.served_content
        completion = c if self.profile == "xai" else r + c
        usage: dict[str, object] = {
            "prompt_tokens": call.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": call.prompt_tokens + r + c,
            "prompt_tokens_details": {"cached_tokens": call.cached_tokens, "audio_tokens": 0},
        }
        if self.profile not in ("vllm", "llamacpp", "together"):
            usage["completion_tokens_details"] = {
                "reasoning_tokens": r,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        if self.profile == "deepseek":
            usage["prompt_cache_hit_tokens"] = call.cached_tokens
            usage["prompt_cache_miss_tokens"] = call.prompt_tokens - call.cached_tokens
        if self.profile == "xai" and call.model.price is not None:
            price = call.model.price
            if call.batch:  # a batch request is billed at the batch price
                price = (price[0] * BATCH_PRICE_FACTOR, price[1] * BATCH_PRICE_FACTOR, price[2] * BATCH_PRICE_FACTOR)
            usage["cost_in_usd_ticks"] = cost_ticks(price, call.prompt_tokens, call.cached_tokens, r + c)
        return usage

    def usage_chunk(self) -> bytes:
        return msgspec.json.encode({**self.head, "choices": [], "usage": self.usage()})

    def error(self) -> bytes:
        return msgspec.json.encode(
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": "internal_error",
                }
            }
        )


def _inline_think(call: Call) -> Generation:
    """Together's shape: ``<think>`` reasoning ``</think>`` then the answer, all in content."""
    gen = call.generation
    if not gen.reasoning:
        return gen
    encode = call.sim.logic.encoding.encode_ordinary
    content = encode("<think>\n") + gen.reasoning + encode("\n</think>\n\n") + gen.content
    return Generation(reasoning=[], summary=[], content=content, task=gen.task, forced=gen.forced)


def adapt_profile(call: Call, cap: int | None) -> None:
    """What a profile changes in a response after admission: Together's hosts put the reasoning
    inline in the content."""
    if call.model.profile == "together":
        call.generation = _inline_think(call)
        call.plan = plan(call.generation, cap)


async def handle(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return OpenAIErrors(None)(400, "invalid_request", "We could not parse the JSON body of your request.", {})
    if not isinstance(body, dict):
        return OpenAIErrors(None)(400, "invalid_request", "The request body must be a JSON object.", {})
    model = sim.config.models.get(str(body.get("model", "")))
    errors = OpenAIErrors(model.profile if model else None)
    try:
        req, cap = parse_request(body, errors, model)
        call = await sim.admit(request, req, cap, raw, errors, bearer_key(request))
    except ContextOverflow as rejected:
        if model is not None and model.profile == "llamacpp" and body.get("stream"):
            # llama-cpp-python answers an over-long streamed prompt with a 200 and an empty body
            empty = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await empty.prepare(request)
            await empty.write_eof()
            return empty
        return rejected.response
    except Reject as rejected:
        return rejected.response
    try:
        adapt_profile(call, cap)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, call, errors, include)
        return await _complete(call, errors)
    finally:
        call.end(completed=call.served_reasoning + call.served_content >= call.plan.output_tokens)


def _headers(call: Call, errors: OpenAIErrors) -> dict[str, str]:
    return {"x-request-id": call.request_id, "openai-processing-ms": "1", **errors._headers(call.admission)}


async def _stream(request: web.Request, call: Call, errors: OpenAIErrors, include_usage: bool) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **_headers(call, errors),
        }
    )
    await open_stream(request, response)
    writer = EventWriter(
        response,
        call.modes,
        call.rng,
        ping="ping" if call.model.profile == "llamacpp" else "keep-alive",
        keepalive_s=call.keepalive_s,
    )
    chunks = _Chunks(call, include_usage)
    await writer.event(chunks.first())

    async def emit(piece: Piece) -> None:
        if piece.kind != "hidden":
            await writer.event(chunks.piece(piece))
        elif "comments" in call.modes:
            await writer.comment()

    async def emit_error() -> None:
        await writer.event(chunks.error())

    async def emit_malformed() -> None:
        await writer.raw(
            b'data: {"id": "chatcmpl-' + call.id.encode() + b'", "choices": [{"delta": {"content": "cut' + b"\n\n"
        )

    items = list(call_pieces(call, _reasoning_view(call.model.profile)))
    if not await drive(call, request, writer, items, emit, emit_error, emit_malformed):
        if call.interrupted:
            await writer.event(b"[DONE]")
            await response.write_eof()
        return response
    if "done_no_finish" not in call.modes:
        await writer.event(chunks.chunk({}, call.plan.finish))
        if chunks.include_usage:
            await writer.event(chunks.usage_chunk())
            call.usage_reported()
    await writer.event(b"[DONE]")
    await response.write_eof()
    return response


async def _complete(call: Call, errors: OpenAIErrors) -> web.Response:
    if call.sim.config.time_scale > 0:
        await asyncio.sleep(call.pacer.total_s(call.plan.output_tokens))
    body = complete_body(call)
    return web.Response(body=msgspec.json.encode(body), content_type="application/json", headers=_headers(call, errors))


def complete_body(call: Call) -> dict[str, object]:
    """The whole response of a request that does not stream (the call serves all of it)."""
    p = call.plan
    decode = call.sim.logic.encoding.decode
    message: dict[str, object] = {
        "role": "assistant",
        "content": decode(call.generation.content[: p.content_tokens]),
        "refusal": None,
    }
    profile = call.model.profile
    if p.reasoning_tokens and profile not in ("openai_hidden", "together", "llamacpp"):
        field = "reasoning" if profile == "vllm" else "reasoning_content"
        message[field] = decode(call.generation.reasoning[: p.reasoning_tokens])
    call.served("reasoning", p.reasoning_tokens)
    call.served("content", p.content_tokens)
    chunks = _Chunks(call, include_usage=False)
    body: dict[str, object] = {
        "id": f"chatcmpl-{call.id}",
        "object": "chat.completion",
        "created": call.created,
        "model": call.model.name,
        "system_fingerprint": "fp_sim0001",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": p.finish}],
        "usage": chunks.usage(),
    }
    call.usage_reported()
    return body
