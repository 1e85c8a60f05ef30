"""`anytime doctor`: key presence offline, one tiny call per provider with --live."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from runner.cli import main
from runner.config.manifest import load_manifest
from runner.engine.probe import live_check, offline_checks

try:  # tests/ may or may not be a package
    from tests.test_providers import KEY, OPENAI_DOC, Replay, Reply, replay, sse
except ImportError:
    from test_providers import KEY, OPENAI_DOC, Replay, Reply, replay, sse  # type: ignore[no-redef] # noqa: F401

MANIFEST = """
[run]
name = "doc"

[providers.host]
kind = "openai_compatible"
base_url = "{url}"
api_key_env = "DOCTOR_TEST_KEY"

[providers.claude]
kind = "anthropic"
api_key_env = "DOCTOR_TEST_MISSING_KEY"

[providers.local]
kind = "llamacpp"
base_url = "{url}"

[models.a]
provider = "host"
model = "host-model"
price = {{ input = 0, output = 0 }}

[models.b]
provider = "claude"
model = "claude-sonnet-4"
price = {{ input = 3, output = 15 }}

[models.c]
provider = "local"
model = "smollm2"
price = {{ input = 0, output = 0 }}

[datasets.d]
kind = "aime"
path = "d.jsonl"
"""


def write(tmp_path: Path, url: str = "http://127.0.0.1:9") -> Path:
    (tmp_path / "d.jsonl").write_text('{"id": "1", "problem": "What is 1+1?", "answer": 2}\n')
    path = tmp_path / "m.toml"
    path.write_text(MANIFEST.format(url=url))
    return path


def test_offline_reports_presence_never_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCTOR_TEST_KEY", KEY)
    monkeypatch.delenv("DOCTOR_TEST_MISSING_KEY", raising=False)
    code = main(["doctor", str(write(tmp_path))])
    out = capsys.readouterr().out
    assert code == 2  # one key is missing: bad input, as `anytime run` says
    assert "$DOCTOR_TEST_KEY set" in out
    assert "$DOCTOR_TEST_MISSING_KEY NOT SET" in out
    assert "local (llamacpp): no key needed" in out
    assert KEY not in out


async def test_live_check_reports_status_latency_and_limits(tmp_path: Path, replay: Replay) -> None:
    loaded = load_manifest(write(tmp_path, replay.url))
    env = {"DOCTOR_TEST_KEY": KEY}
    rows = {r.provider: r for r in offline_checks(loaded, env)}
    replay.add(
        Reply(
            headers={
                "x-ratelimit-limit-requests": "500",
                "x-ratelimit-remaining-requests": "499",
                "x-request-id": "req_doc",
            },
            chunks=sse(*OPENAI_DOC),
        )
    )
    replay.add(Reply(status=401, chunks=[b'{"error": {"message": "bad key", "type": "invalid_request_error"}}']))
    async with aiohttp.ClientSession() as session:
        ok = await live_check(rows["host"], loaded, env, session)
        bad = await live_check(rows["local"], loaded, env, session)
        skipped = await live_check(rows["claude"], loaded, env, session)
    assert ok.status == "ok" and ok.model == "host-model" and ok.http_status == 200
    assert ok.request_id == "req_doc" and ok.finish == "stop"
    assert ok.limits is not None and ok.limits.remaining_requests == 499
    assert ok.latency_s is not None and ok.usage is not None
    assert replay.requests[0][2]["max_tokens"] == 16
    assert bad.status == "configuration" and bad.http_status == 401 and "bad key" in (bad.error or "")
    assert skipped.status.startswith("skipped") and "DOCTOR_TEST_MISSING_KEY" in skipped.status
    for row in (ok, bad, skipped):
        assert KEY not in repr(row)


@pytest.mark.live
def test_live_providers(capsys: pytest.CaptureFixture[str]) -> None:
    """Opt in with --live and ANYTIME_LIVE_MANIFEST naming a manifest whose keys are in the environment."""
    manifest = os.environ.get("ANYTIME_LIVE_MANIFEST")
    if not manifest:
        pytest.skip("set ANYTIME_LIVE_MANIFEST to a manifest of real providers")
    code = main(["doctor", manifest, "--live"])
    print(capsys.readouterr().out)
    assert code == 0


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("DOCTOR_TEST_KEY", KEY)
    monkeypatch.setenv("DOCTOR_TEST_MISSING_KEY", "x")
    assert main(["doctor", str(write(tmp_path)), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["provider"] for r in rows] == ["host", "claude", "local"]
    assert [r["key_set"] for r in rows] == [True, True, None]
    assert KEY not in json.dumps(rows)
