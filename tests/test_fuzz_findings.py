"""What the fuzz tests found, pinned as plain cases (each failed before its fix)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from runner.cli import main
from runner.config.manifest import parse_manifest
from runner.errors import DatasetError, ManifestError, StreamBroken
from runner.providers.anthropic import AnthropicAdapter
from runner.providers.gemini import GeminiAdapter
from runner.providers.headers import anthropic_limits, openai_limits, parse_retry_after
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.providers.openai_responses import OpenAIResponsesAdapter
from runner.tasks.meeting import MeetingTask
from runner.tasks.registry import get_task
from runner.types import RateLimitReading
from tests.test_sim_support import MEETING_ROW


def test_an_error_is_one_line_whatever_the_manifest_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[run]\nname = "x"\n[providers."a\\rb\\nc"]\nkind = "nope"\n')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "providers.a\\rb\\nc.kind" in err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a = " + "[" * 3000 + "]" * 3000, "nested too deeply"),
        ("a = 1\n" + "b = " + "{ c = " * 3000 + "1" + " }" * 3000, "nested too deeply"),
    ],
)
def test_deeply_nested_toml_is_a_manifest_error(text: str, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(text, "m.toml")


def test_deeply_nested_json_is_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DatasetError, match="nested too deeply") as info:
        get_task("aime").load(path)
    assert info.value.line == 1


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("golden_plan", [None], "golden_plan[0]"),
        ("golden_plan", ["You start at Nob Hill at 9:00AM.", 7], "golden_plan[1]"),
        ("constraints", [["Nob Hill", "9:00AM"], ["Kim", "Presidio", None, 60]], "constraints[1]"),
        ("constraints", [["Nob Hill", "9:00AM"], ["Kim", "Presidio", "10:00AM to 1:00PM"]], "constraints[1]"),
        ("constraints", [None], "constraints[0]"),
        ("dist_matrix", {"Nob Hill": {"Presidio": "far"}}, "dist_matrix.Nob Hill"),
        ("dist_matrix", {"Nob Hill": {"Presidio": 1e300}}, "dist_matrix.Nob Hill"),
        ("dist_matrix", {"Nob Hill": [17]}, "dist_matrix.Nob Hill"),
    ],
)
def test_a_malformed_meeting_record_is_a_dataset_error(tmp_path: Path, field: str, value: object, named: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({**MEETING_ROW, field: value}) + "\n")
    with pytest.raises(DatasetError) as info:
        MeetingTask().load(path)
    assert info.value.line == 1 and named in info.value.problem


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-limit-requests": "inf"},
        {"x-ratelimit-remaining-tokens": "-1"},
        {"x-ratelimit-limit-tokens": "nan"},
        {"x-ratelimit-reset-tokens": "1e308h"},
        {"x-ratelimit-reset-requests": "inf"},
        {"retry-after": "inf"},
        {"retry-after-ms": "1e400"},
        {"retry-after": "Wed, 21 Oct 99999 07:28:00 GMT"},
    ],
)
def test_unreadable_limit_headers_are_unknown_not_infinite(headers: dict[str, str]) -> None:
    for reading in (
        openai_limits(headers),
        anthropic_limits({k.replace("x-", "anthropic-"): v for k, v in headers.items()}),
    ):
        assert reading == RateLimitReading() or all(v is None for v in msgspec.structs.astuple(reading)), reading
    assert parse_retry_after(headers) is None


def chat_usage(**usage: object) -> list[dict[str, object]]:
    return [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}]


@pytest.mark.parametrize(
    ("adapter", "events", "field"),
    [
        (OpenAIChatAdapter, chat_usage(prompt_tokens=-5, completion_tokens=3), "prompt_tokens"),
        (OpenAIChatAdapter, chat_usage(prompt_tokens=5, completion_tokens=2**50), "completion_tokens"),
        (OpenAIChatAdapter, chat_usage(prompt_tokens=5, cost=-2.0), "cost"),
        (OpenAIChatAdapter, chat_usage(prompt_tokens=5, cost_in_usd_ticks=-1), "cost_in_usd_ticks"),
        (AnthropicAdapter, [{"type": "message_start", "message": {"usage": {"input_tokens": -1}}}], "input_tokens"),
        (
            GeminiAdapter,
            [{"candidates": [{"finishReason": "STOP"}], "usageMetadata": {"thoughtsTokenCount": -7}}],
            "thoughtsTokenCount",
        ),
        (
            OpenAIResponsesAdapter,
            [{"type": "response.completed", "response": {"usage": {"input_tokens": 1, "output_tokens": -1}}}],
            "output_tokens",
        ),
    ],
)
async def test_a_negative_or_absurd_usage_is_a_broken_stream_naming_the_field(
    adapter: type, events: list[dict[str, object]], field: str
) -> None:
    a = adapter("http://127.0.0.1:9/v1", "k", provider="p")
    body = [
        b"data: " + (event if isinstance(event, str) else json.dumps(event)).encode() + b"\n\n"
        for event in [*events, "[DONE]"]
    ]

    async def read() -> bytes:
        return body.pop(0) if body else b""

    with pytest.raises(StreamBroken, match=field):
        async for _ in a.batches(read, RateLimitReading()):
            pass
