"""The simulator's model logic and its wire dialects, read by the official SDKs and the runner's SSE parser."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import aiohttp
import anthropic
import msgspec
import openai
import pytest
from test_sim_support import (
    AIME_GOLDS,
    aime_statement,
    forced_prompt,
    gpqa_prompt,
    sse_events,
    write_datasets,
)

from anytime_sim import SimConfig, open_simulator
from anytime_sim.knowledge import ProblemIndex, open_index
from anytime_sim.models import BUILTIN_MODELS
from anytime_sim.tasks import TASKS
from anytime_sim.trace import GenRequest, TraceModel
from runner.tokens.count import count_chat_tokens
from runner.tokens.encodings import get_encoding
from runner.types import Message

KEY_HEADER = {"Authorization": "Bearer test-key"}  # every vendor API wants a key (the simulator: any)

ENC = get_encoding("o200k_base")


@pytest.fixture
def datasets(tmp_path: Path) -> list[tuple[str, Path]]:
    return write_datasets(tmp_path / "data")


@pytest.fixture
async def sim(datasets):
    async with open_simulator(SimConfig(time_scale=0, chunk_tokens=4), datasets) as s:
        yield s


def chat(model: str, prompt: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


async def post(sim, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(headers=KEY_HEADER) as session:
        async with session.post(sim.base_url + path, json=body, headers=headers or {"Authorization": "Bearer t"}) as r:
            return r.status, dict(r.headers), await r.read()


# --- OpenAI Chat Completions -------------------------------------------------------------------


async def test_chat_stream_with_openai_sdk_counts_match_o200k(sim):
    client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0)
    stream = await client.chat.completions.create(
        model="sim-reasoner-large",
        messages=[{"role": "user", "content": aime_statement(0)}],
        stream=True,
        stream_options={"include_usage": True},
        seed=3,
    )
    reasoning, content, usage, finish = "", "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    await client.close()
    assert finish == "stop" and usage is not None
    assert usage.completion_tokens_details.reasoning_tokens == len(ENC.encode_ordinary(reasoning))
    assert usage.completion_tokens == len(ENC.encode_ordinary(reasoning)) + len(ENC.encode_ordinary(content))
    # OpenAI cookbook framing: 3 per message + the role ("user" is 1 token) + 3 for the reply primer
    assert usage.prompt_tokens == count_chat_tokens(ENC, (Message("user", aime_statement(0)),))
    assert content.startswith("Answer: ")
    assert "current answer is" in reasoning
    await sim.wait_idle()
    stats = sim.stats().models["sim-reasoner-large"]
    assert stats.output_tokens == usage.completion_tokens and stats.reasoning_tokens == len(ENC.encode(reasoning))


async def test_chat_raw_shapes_usage_chunk_length_and_done(sim):
    status, headers, raw = await post(
        sim,
        "/v1/chat/completions",
        chat(
            "sim-reasoner-large",
            aime_statement(1),
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=50,
        ),
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["usage"] is None for c in chunks[:-1]) and chunks[-1]["choices"] == []
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert chunks[-1]["usage"]["completion_tokens"] == 50
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 50
    assert len({c["id"] for c in chunks}) == 1
    # without include_usage no chunk has a usage key
    _, _, raw = await post(sim, "/v1/chat/completions", chat("sim-cot-small", aime_statement(1), stream=True))
    assert all("usage" not in json.loads(d) for _, d in sse_events(raw)[:-1])


async def test_chat_non_stream(sim):
    status, _, raw = await post(sim, "/v1/chat/completions", chat("sim-cot-small", aime_statement(2), max_tokens=30))
    body = json.loads(raw)
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 30
    assert len(ENC.encode_ordinary(body["choices"][0]["message"]["content"])) == 30


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("sim-grok-3-mini", "reasoning_content"),
        ("sim-deepseek-reasoner", "reasoning_content"),
        ("sim-gpt-oss-120b", "reasoning"),
    ],
)
async def test_reasoning_field_per_profile(sim, model, field):
    _, _, raw = await post(
        sim,
        "/v1/chat/completions",
        chat(model, aime_statement(3), stream=True, stream_options={"include_usage": True}),
    )
    chunks = [json.loads(d) for _, d in sse_events(raw)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get(field, "") for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning and content.startswith("Answer: ")
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all(field not in d for d in deltas[first_content:])  # reasoning comes before the answer
    usage = chunks[-1]["usage"]
    n_reasoning = len(ENC.encode_ordinary(reasoning))
    if model == "sim-grok-3-mini":  # xAI: completion_tokens leaves reasoning out
        assert usage["completion_tokens"] == len(ENC.encode_ordinary(content))
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] + n_reasoning
    else:
        assert usage["completion_tokens"] == n_reasoning + len(ENC.encode_ordinary(content))
    if model == "sim-gpt-oss-120b":
        assert "completion_tokens_details" not in usage
    if model == "sim-deepseek-reasoner":
        assert usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]


async def test_together_think_tags_and_llamacpp_quirks(sim):
    _, _, raw = await post(
        sim, "/v1/chat/completions", chat("sim-deepseek-r1-together", aime_statement(4), stream=True)
    )
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for _, d in sse_events(raw)[:-1])
    assert text.startswith("<think>\n") and "\n</think>\n\nAnswer: " in text
    status, headers, raw = await post(
        sim,
        "/v1/chat/completions",
        chat("sim-smollm2", aime_statement(4), stream=True, stream_options={"include_usage": True}),
    )
    chunks = [json.loads(d) for _, d in sse_events(raw)[:-1]]
    assert status == 200 and not any("usage" in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert not any(h.startswith("x-ratelimit") for h in headers)


async def test_hidden_reasoning_is_counted_not_streamed_and_fits_the_cap(sim):
    client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0)
    done = await client.chat.completions.create(
        model="sim-o4-mini",
        messages=[{"role": "user", "content": aime_statement(5)}],
        max_completion_tokens=600,
    )
    assert done.usage.completion_tokens_details.reasoning_tokens > 0
    assert done.choices[0].message.content.startswith("Answer: ")
    assert done.usage.completion_tokens <= 600 and done.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="sim-o4-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=10
        )
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    await client.close()


# --- model logic ---------------------------------------------------------------------------------


async def test_traces_are_deterministic_per_model_prompt_seed(sim):
    async def text(model: str, seed: int) -> bytes:
        _, _, raw = await post(sim, "/v1/chat/completions", chat(model, aime_statement(6), seed=seed, max_tokens=400))
        return json.loads(raw)["choices"][0]["message"]["content"]

    assert await text("sim-cot-small", 1) == await text("sim-cot-small", 1)
    assert await text("sim-cot-small", 1) != await text("sim-cot-small", 2)
    assert await text("sim-cot-small", 1) != await text("sim-gpt-4o", 1)


def test_rightmost_statement_is_the_problem(datasets):
    index = open_index(datasets)
    prompt = "Example:\n" + aime_statement(2) + "\nAnswer: 113\n\nNow solve:\n" + aime_statement(7)
    found = index.find(prompt)
    assert found is not None and found.gold == str(AIME_GOLDS[7])
    assert index.find("nothing known here") is None


def _curve(model: str, index: ProblemIndex, budgets: list[int], seeds: range) -> list[float]:
    logic, sim_model = TraceModel(index), BUILTIN_MODELS[model]
    hits = [0] * len(budgets)
    for i, gold in enumerate(AIME_GOLDS):
        for seed in seeds:
            gen = logic.generate(sim_model, GenRequest(model=model, messages=(("user", aime_statement(i)),), seed=seed))
            trace = gen.reasoning or gen.content
            for k, b in enumerate(budgets):
                found = TASKS["aime"].parse_last(ENC.decode(trace[:b]))
                hits[k] += int(found is not None and found[1] == gold)
    return [h / (len(AIME_GOLDS) * len(seeds)) for h in hits]


def test_quality_rises_with_budget_and_skill(datasets):
    index = open_index(datasets)
    budgets = [128, 256, 512, 1024, 2048, 4096]
    strong = _curve("sim-reasoner-large", index, budgets, range(20))
    weak = _curve("sim-cot-small", index, budgets, range(20))
    # fixed seeds: the numbers are exact, the margins are wide
    assert strong[-1] > strong[1] + 0.3 and weak[-1] > weak[0] + 0.1
    assert all(b >= a - 0.05 for a, b in itertools.pairwise(strong))
    assert sum(strong) > sum(weak) + 0.5
    assert strong[-1] > weak[-1] + 0.2


async def test_forced_answer_uses_the_last_candidate_in_the_block(sim):
    reasoning = " Try 12. So the current answer is 17. Check again. So the current answer is 321. Then I wond"
    _, _, raw = await post(
        sim,
        "/v1/chat/completions",
        chat("sim-reasoner-large", forced_prompt(aime_statement(8), reasoning), max_tokens=64),
    )
    body = json.loads(raw)
    assert body["choices"][0]["message"]["content"] == "Answer: 321"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    # no candidate in the block: a deterministic guess in the task's format
    guesses = set()
    for _ in range(2):
        _, _, raw = await post(
            sim,
            "/v1/chat/completions",
            chat("sim-cot-small", forced_prompt(aime_statement(8), " Let me think."), seed=4),
        )
        guesses.add(json.loads(raw)["choices"][0]["message"]["content"])
    assert len(guesses) == 1 and guesses.pop().startswith("Answer: ")


async def test_stream_then_forced_answer_round_trip(sim):
    _, _, raw = await post(
        sim,
        "/v1/chat/completions",
        chat("sim-reasoner-large", aime_statement(9), seed=11, max_completion_tokens=700),
    )
    reasoning = json.loads(raw)["choices"][0]["message"]["reasoning_content"]
    expected = TASKS["aime"].parse_last(reasoning)
    _, _, raw = await post(
        sim,
        "/v1/chat/completions",
        chat("sim-reasoner-large", forced_prompt(aime_statement(9), reasoning), seed=11),
    )
    answer = json.loads(raw)["choices"][0]["message"]["content"]
    assert expected is not None and answer == f"Answer: {expected[1]}"


async def test_task_formats_gpqa_trip_calendar_meeting(sim, datasets):
    question, gold_letter = gpqa_prompt((2, 0, 3, 1))
    letters = set()
    for seed in range(6):
        _, _, raw = await post(sim, "/v1/chat/completions", chat("sim-reasoner-large", question, seed=seed))
        letters.add(json.loads(raw)["choices"][0]["message"]["content"])
    assert f"Answer: {gold_letter}" in letters and all(a.startswith("Answer: ") for a in letters)
    rows = {kind: json.loads(path.read_text().splitlines()[0]) for kind, path in datasets}
    plan_answer = TASKS["trip"].final(TASKS["trip"].gold(_problem(datasets, "trip"), ""))
    assert plan_answer.splitlines()[2:] == rows["trip"]["golden_plan"].splitlines()[2:]
    for kind, block, expected in [
        (
            "trip",
            TASKS["trip"].statement((("Helsinki", 5), ("Florence", 6))),
            "**Day 1-5:** Arriving in Helsinki and visit Helsinki for 5 "
            "days.\n**Day 5:** Fly from Helsinki to Florence.",
        ),
        (
            "calendar",
            " So the current answer is Monday from 10:00 to 11:00.",
            "Here is the proposed time: Monday, 10:00 - 11:00",
        ),
        (
            "meeting",
            TASKS["meeting"].statement(("You start at Nob Hill at 9:00AM.", "You wait until 10:00AM.")),
            "SOLUTION: You start at Nob Hill at 9:00AM. You wait until 10:00AM.",
        ),
        ("gpqa", " So the current answer is (C).", "Answer: C"),
    ]:
        statement = rows[kind].get("prompt_0shot") or question
        _, _, raw = await post(sim, "/v1/chat/completions", chat("sim-gpt-4.1", forced_prompt(statement, block)))
        assert expected in json.loads(raw)["choices"][0]["message"]["content"], kind


def _problem(datasets, kind):
    return next(p for p in open_index(datasets)._problems if p.task == kind)


def test_trip_candidates_keep_right_leading_stays(datasets):
    import random

    trip = TASKS["trip"]
    gold = trip.gold(_problem(datasets, "trip"), "")
    for right in range(len(gold)):
        cand = trip.candidate(gold, right, random.Random(right), "")
        assert cand[:right] == gold[:right] and cand[right] != gold[right]
        assert sorted(c for c, _ in cand) == sorted(c for c, _ in gold)
    assert trip.candidate(gold, len(gold), random.Random(0), "") == gold


# --- other dialects ------------------------------------------------------------------------------


async def test_anthropic_thinking_stream_with_sdk(sim):
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0)
    async with client.messages.stream(
        model="sim-claude-sonnet-4",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 1200},
        messages=[{"role": "user", "content": aime_statement(10)}],
    ) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].signature and message.content[1].text.startswith("Answer: ")
    # Claude 4 style: a summary is shown, the full thinking (<= budget) is billed
    billed_thinking = message.usage.output_tokens - len(ENC.encode_ordinary(message.content[1].text))
    assert len(ENC.encode_ordinary(message.content[0].thinking)) < billed_thinking <= 1200
    short = await client.messages.create(
        model="sim-claude-sonnet-4",
        max_tokens=1500,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": aime_statement(10)}],
        extra_body={"seed": 1},
    )
    assert short.usage.output_tokens <= 1500
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model="sim-claude-sonnet-4",
            max_tokens=2000,
            messages=[{"role": "user", "content": "x"}],
            thinking={"type": "enabled", "budget_tokens": 100},
        )
    await client.close()


async def test_anthropic_raw_event_order_and_max_tokens(sim):
    status, headers, raw = await post(
        sim,
        "/v1/messages",
        {
            "model": "sim-claude-plain",
            "max_tokens": 40,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    names = [name for name, _ in sse_events(raw)]
    assert status == 200 and headers["request-id"].startswith("req_")
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    delta = json.loads(sse_events(raw)[-2][1])
    assert delta["delta"]["stop_reason"] == "max_tokens" and delta["usage"]["output_tokens"] == 40
    assert all(json.loads(d)["type"] == n for n, d in sse_events(raw))


async def test_responses_summary_and_incomplete(sim):
    client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0)
    stream = await client.responses.create(
        model="sim-reasoner-large",
        input=aime_statement(11),
        stream=True,
        max_output_tokens=300,
        reasoning={"effort": "low", "summary": "auto"},
    )
    seen, last = [], None
    async for event in stream:
        seen.append(event.type)
        last = event
    assert seen[0] == "response.created" and seen[-1] == "response.incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.usage.output_tokens == 300
    done = await client.responses.create(
        model="sim-o4-mini", input=aime_statement(11), max_output_tokens=5000, reasoning={"summary": "auto"}
    )
    assert done.status == "completed" and done.output_text.startswith("Answer: ")
    assert done.usage.output_tokens_details.reasoning_tokens > 0
    await client.close()
    _, _, raw = await post(
        sim,
        "/v1/responses",
        {"model": "sim-o4-mini", "input": "x", "stream": True, "reasoning": {"summary": "auto"}},
    )
    numbers = [json.loads(d)["sequence_number"] for _, d in sse_events(raw)]
    assert numbers == list(range(len(numbers)))


async def test_gemini_thoughts_and_usage(sim):
    status, _, raw = await post(
        sim,
        "/v1beta/models/sim-gemini-2.5-flash:streamGenerateContent?alt=sse",
        {
            "contents": [{"role": "user", "parts": [{"text": aime_statement(0)}]}],
            "generationConfig": {"maxOutputTokens": 8000, "thinkingConfig": {"includeThoughts": True}},
        },
        headers={"x-goog-api-key": "k"},
    )
    responses = [json.loads(d) for _, d in sse_events(raw)]
    parts = [p for r in responses for p in r["candidates"][0]["content"]["parts"]]
    thoughts = "".join(p["text"] for p in parts if p.get("thought"))
    answer = "".join(p["text"] for p in parts if not p.get("thought"))
    usage = responses[-1]["usageMetadata"]
    assert status == 200 and thoughts and answer.startswith("Answer: ")
    assert responses[-1]["candidates"][0]["finishReason"] == "STOP"
    assert usage["candidatesTokenCount"] == len(ENC.encode_ordinary(answer))
    assert usage["thoughtsTokenCount"] >= len(ENC.encode_ordinary(thoughts))
    _, _, raw = await post(
        sim,
        "/v1beta/models/sim-gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": 20}},
        headers={"x-goog-api-key": "k"},
    )
    last = json.loads(sse_events(raw)[-1][1])
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS" and last["usageMetadata"]["thoughtsTokenCount"] == 20


async def test_stats_endpoint_and_disconnect_accounting(datasets):
    config = SimConfig(time_scale=1.0, chunk_tokens=4)
    async with open_simulator(config, datasets) as sim, aiohttp.ClientSession(headers=KEY_HEADER) as session:
        # a slow model (real speed) so the client can leave long before the end
        body = chat("sim-deepseek-reasoner", aime_statement(1), stream=True, max_completion_tokens=3000)
        async with session.post(sim.base_url + "/v1/chat/completions", json=body) as response:
            for _ in range(3):
                await response.content.readline()
            response.close()
        await sim.wait_idle()
        stats = sim.stats()
        async with session.get(sim.base_url + "/sim/stats") as r:
            remote = msgspec.json.decode(await r.read(), type=type(stats))
    model = stats.models["sim-deepseek-reasoner"]
    assert model.disconnected == 1 and model.completed == 0
    assert 0 <= model.output_tokens < 3000
    assert remote.models["sim-deepseek-reasoner"] == model


def test_problem_in_the_system_turn_is_found(datasets):
    logic = TraceModel(open_index(datasets))
    messages = (("system", "Solve this problem: " + aime_statement(3)), ("user", "Think step by step."))
    gen = logic.generate(BUILTIN_MODELS["sim-cot-small"], GenRequest(model="sim-cot-small", messages=messages))
    assert gen.task == "aime"


def test_cli_arguments_build_the_config(datasets):
    import argparse

    from runner.cli.sim import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    path = str(datasets[0][1])
    args = parser.parse_args(
        [
            "--data",
            f"{path}:aime",
            "--rpm",
            "60",
            "--time-scale",
            "0",
            "--drop",
            "0.1",
            "--storm",
            "0.01",
            "--trickle",
            "0.2",
            "--reset",
            "0.05",
            "--mode",
            "crlf",
            "--port",
            "0",
        ]
    )
    config = config_from_args(args)
    assert args.data == [("aime", Path(path))] and config.rpm == 60 and config.time_scale == 0
    assert config.faults.drop_mid_stream == 0.1 and config.modes == ("crlf",)
    faults = config.faults
    assert (faults.rate_limit_storm, faults.trickle, faults.reset) == (0.01, 0.2, 0.05)
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", f"{path}:nope"])


async def test_anytime_sim_command_serves_until_interrupted(datasets):
    import asyncio
    import signal
    import sys

    path = datasets[0][1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runner.cli",
        "sim",
        "--port",
        "0",
        "--time-scale",
        "0",
        "--data",
        f"{path}:aime",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = (await process.stdout.readline()).decode()
    url = first.split("listening on ")[1].split()[0]
    async with aiohttp.ClientSession(headers=KEY_HEADER) as session, session.get(url + "/sim/stats") as r:
        assert r.status == 200 and (await r.json())["in_flight"] == 0
        payload = chat("sim-cot-small", aime_statement(0), max_tokens=10)
        async with session.post(url + "/v1/chat/completions", json=payload) as r:
            assert r.status == 200
    process.send_signal(signal.SIGINT)
    _, stderr = await process.communicate()
    assert process.returncode == 130  # interrupted: the same code as every command stopped by Ctrl-C
    assert "sim-cot-small: 1 requests, 0 x 429" in stderr.decode()


async def test_automatic_prompt_cache_and_xai_cost(sim):
    long_context = " ".join(f"Fact {i}: the value of item {i} is {i * 7}." for i in range(150))
    prompt = long_context + "\n\n" + aime_statement(2)

    async def usage(model: str, text: str, key: str = "k") -> dict:
        payload = chat(model, text, max_tokens=20)
        _, _, raw = await post(sim, "/v1/chat/completions", payload, {"Authorization": f"Bearer {key}"})
        return json.loads(raw)["usage"]

    first = await usage("sim-gpt-4.1", prompt)
    assert first["prompt_tokens"] > 1024 and first["prompt_tokens_details"]["cached_tokens"] == 0
    again = await usage("sim-gpt-4.1", prompt + " Please be brief.")
    cached = again["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0 and again["prompt_tokens"] - cached < 128 + 16
    assert (await usage("sim-gpt-4.1", prompt, key="other"))["prompt_tokens_details"]["cached_tokens"] == 0
    assert (await usage("sim-gpt-4.1", "short"))["prompt_tokens_details"]["cached_tokens"] == 0
    await usage("sim-grok-3-mini", prompt)
    xai = await usage("sim-grok-3-mini", prompt)
    hit = xai["prompt_tokens_details"]["cached_tokens"]
    output = xai["total_tokens"] - xai["prompt_tokens"]  # xAI: completion + reasoning
    expected = ((xai["prompt_tokens"] - hit) * 0.30 + hit * 0.075 + output * 0.50) / 1e6
    assert hit > 0 and xai["cost_in_usd_ticks"] == round(expected * 1e10)
    await sim.wait_idle()
    assert sim.stats().models["sim-gpt-4.1"].cached_input_tokens == cached


async def test_anthropic_cache_control_writes_then_reads(sim):
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0)
    system = [
        {
            "type": "text",
            "text": " ".join(f"Rule {i}: keep item {i} dry." for i in range(200)),
            "cache_control": {"type": "ephemeral"},
        }
    ]
    kwargs = {
        "model": "sim-claude-plain",
        "max_tokens": 20,
        "system": system,
        "messages": [{"role": "user", "content": aime_statement(1)}],
    }
    first = await client.messages.create(**kwargs)
    second = await client.messages.create(**kwargs)
    await client.close()
    assert first.usage.cache_creation_input_tokens > 1024 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens < 100


def test_trip_partial_credit_rises_with_budget(datasets):
    index = open_index(datasets)
    logic, model = TraceModel(index), BUILTIN_MODELS["sim-reasoner-large"]
    problem = _problem(datasets, "trip")
    gold = TASKS["trip"].gold(problem, "")
    budgets, csr = [256, 1024, 4096], [0.0, 0.0, 0.0]
    for seed in range(40):
        gen = logic.generate(model, GenRequest(model=model.name, messages=(("user", problem.statement),), seed=seed))
        for k, b in enumerate(budgets):
            found = TASKS["trip"].parse_last(ENC.decode(gen.reasoning[:b]))
            stays = found[1] if found else ()
            matched = next((i for i, (x, y) in enumerate(zip(stays, gold, strict=False)) if x != y), min(len(stays), 3))
            csr[k] += matched / len(gold) / 40
    assert csr[0] < csr[1] < csr[2] and csr[2] > 0.5


async def test_clients_leaving_mid_stream_log_no_server_errors(datasets, caplog):
    # slow enough that no stream can end before its client leaves (at 0.01 one did, under load)
    async with open_simulator(SimConfig(time_scale=0.1, chunk_tokens=8), datasets) as sim:
        async with aiohttp.ClientSession(headers=KEY_HEADER) as session:
            for i in range(6):
                payload = chat("sim-reasoner-large", aime_statement(i), stream=True)
                async with session.post(sim.base_url + "/v1/chat/completions", json=payload) as response:
                    for _ in range(5 + 7 * i):
                        await response.content.readline()
                    response.close()
        await sim.wait_idle()
        assert sim.stats().models["sim-reasoner-large"].disconnected == 6
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("sim-o4-mini", {"max_tokens": 10}),
        ("sim-o4-mini", {"temperature": 0.2}),
        ("sim-gpt-4.1", {"reasoning_effort": "low"}),
        ("sim-grok-3", {"reasoning_effort": "high"}),
        ("sim-grok-3-mini", {"reasoning_effort": "medium"}),
    ],
)
async def test_parameters_a_real_host_refuses(sim, model, extra):
    status, _, raw = await post(sim, "/v1/chat/completions", chat(model, "hi", **extra))
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    ok, _, _ = await post(sim, "/v1/chat/completions", chat("sim-grok-3-mini", "hi", reasoning_effort="low"))
    assert ok == 200


def test_quality_depends_on_problem_and_seed_not_on_the_rest_of_the_prompt(datasets):
    logic, model = TraceModel(open_index(datasets)), BUILTIN_MODELS["sim-reasoner-large"]
    framings = ("Solve:\n{q}", "Here are worked examples of other problems.\n\nProblem:\n{q}\n\nBe careful.")
    scores = []
    for framing in framings:
        hits = 0
        for i, gold in enumerate(AIME_GOLDS):
            for seed in range(8):
                messages = (("user", framing.format(q=aime_statement(i))),)
                gen = logic.generate(model, GenRequest(model=model.name, messages=messages, seed=seed))
                for budget in (300, 900, 2700):
                    found = TASKS["aime"].parse_last(ENC.decode(gen.reasoning[:budget]))
                    hits += int(found is not None and found[1] == gold)
        scores.append(hits)
    assert abs(scores[0] - scores[1]) <= 0.03 * len(AIME_GOLDS) * 8 * 3
