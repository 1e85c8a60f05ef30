"""One check for every command: `validate`, `estimate`, `doctor` and `run` agree about what is valid.

Each failure is one line naming the file and the field (or the dataset line), exit code 2, and
nothing spent; key variables are named, never their values.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from anytime_sim import SimConfig
from anytime_sim.models import BUILTIN_MODELS
from runner.cli import main
from runner.config.calls import plan_model, trace_request
from runner.config.manifest import load_manifest, parse_manifest
from runner.errors import ManifestError
from runner.ledger.reader import iter_records
from runner.ledger.records import Note
from runner.providers.registry import KINDS, default_base_url
from runner.types import Message
from tests.conftest import DATA
from tests.sim_thread import simulator_thread

SECRET = "sk-preflight-7f3a9c-never-print-me"

MANIFEST = """
[run]
name = "pre"
ledger_dir = "{ledgers}"

[providers.host]
kind = "{kind}"
base_url = "{url}"
{key_line}

[providers.unused]
kind = "anthropic"
api_key_env = "PREFLIGHT_UNUSED_KEY"

[models.a]
provider = "host"
model = "{model}"
{price_line}

[models.b]
provider = "unused"
model = "claude-sonnet-4-20250514"

[datasets.d]
kind = "aime"
path = "{data}/aime_2024.jsonl"
limit = 1

[sweep]
models = ["a"]
budgets = [64, 128]

[simulator]
time_scale = 0
"""


def manifest(
    tmp_path: Path,
    *,
    kind: str = "openai_compatible",
    url: str = "http://127.0.0.1:9/v1",
    key_env: str | None = None,
    model: str = "sim-gpt-oss-20b",
    price: bool = True,
    extra: str = "",
) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(
        MANIFEST.format(
            ledgers=tmp_path / "ledgers",
            kind=kind,
            url=url,
            key_line=f'api_key_env = "{key_env}"' if key_env else "",
            model=model,
            price_line="price = { input = 0.1, output = 0.4 }" if price else "",
            data=DATA,
        )
        + extra
    )
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# ---- item 9: validate fails where run fails ------------------------------------------------


def test_validate_fails_on_a_model_with_no_known_price(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, model="my-local-model", price=False)
    assert main(["validate", str(path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: m.toml: models.a.price: no known price for openai_compatible/my-local-model")
    assert not (tmp_path / "ledgers").exists()


def test_validate_fails_on_a_missing_key_variable_and_names_it_never_a_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFLIGHT_HOST_KEY", raising=False)
    monkeypatch.setenv("PREFLIGHT_OTHER_KEY", SECRET)
    path = manifest(tmp_path, kind="openai", url="https://api.openai.com/v1", key_env="PREFLIGHT_HOST_KEY")
    assert main(["validate", str(path)]) == 2
    line = one_error_line(capsys)
    assert line == (
        "error: m.toml: providers.host.api_key_env: environment variable PREFLIGHT_HOST_KEY is not set "
        "(export it with your host API key)"
    )
    monkeypatch.setenv("PREFLIGHT_HOST_KEY", SECRET)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


@pytest.mark.parametrize(
    ("key_env", "key_set", "expected"),
    [
        (None, False, 0),  # a keyless host: no variable named, none needed
        ("PREFLIGHT_HOST_KEY", True, 0),  # a variable named and set: sent as the key
        ("PREFLIGHT_HOST_KEY", False, 2),  # a variable named and not set: bad input everywhere
    ],
)
def test_doctor_validate_and_run_agree_on_a_keyless_compatible_host(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key_env: str | None,
    key_set: bool,
    expected: int,
) -> None:
    # the unused provider's key is missing too: no selected model uses it, so no command minds
    monkeypatch.delenv("PREFLIGHT_UNUSED_KEY", raising=False)
    if key_set:
        monkeypatch.setenv("PREFLIGHT_HOST_KEY", SECRET)
    else:
        monkeypatch.delenv("PREFLIGHT_HOST_KEY", raising=False)
    with simulator_thread(SimConfig(time_scale=0), [("aime", DATA / "aime_2024.jsonl")]) as sim:
        path = manifest(tmp_path, url=f"{sim.base_url}/v1", key_env=key_env)
        codes = {cmd: main([cmd, str(path)]) for cmd in ("validate", "doctor")}
        codes["run"] = main(["run", str(path), "--yes", "--plain", "--no-report"])
    assert codes == {"validate": expected, "doctor": expected, "run": expected}
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "unused (anthropic): not used by the selected models" in out.out
    if expected == 2:
        assert out.err.count("PREFLIGHT_HOST_KEY is not set") == 3
        assert not (tmp_path / "ledgers").exists()


def test_every_kind_without_a_default_endpoint_needs_a_base_url(tmp_path: Path) -> None:
    # the manifest's rule and the adapters' defaults are one table: a kind with no public
    # endpoint must name its server (else `run` would send to "" and fail only at the first call)
    from runner.config.kinds import KEYLESS_KINDS, NO_DEFAULT_URL_KINDS

    assert {kind for kind in KINDS if default_base_url(kind) is None} == NO_DEFAULT_URL_KINDS | {"sim"}
    assert NO_DEFAULT_URL_KINDS <= KEYLESS_KINDS
    text = manifest(tmp_path).read_text().replace('base_url = "http://127.0.0.1:9/v1"', "")
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "m.toml")
    assert info.value.path == "providers.host.base_url"


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ("http://127.0.0.1:9/v1", "localhost:8000/v1", "providers.host", "must start with http://, https:// or"),
        ("http://127.0.0.1:9/v1", "htp//x", "providers.host", "must start with http://"),
        ("http://127.0.0.1:9/v1", "http:///v1", "providers.host", "must name a host"),
        ("http://127.0.0.1:9/v1", "http://127.0.0.1:port/v1", "providers.host", "not a valid URL"),
        ('name = "pre"', 'name = "pre"\nmax_usd = nan', "run", "`max_usd` must be a finite number"),
        ('name = "pre"', 'name = "pre"\nmax_usd = inf', "run", "`max_usd` must be a finite number"),
        ('name = "pre"', 'name = "pre"\nconfirm_above_usd = -1.0', "run", "`confirm_above_usd` must be >= 0"),
        ("input = 0.1", "input = nan", "models.a.price", "`input` must be a finite number"),
        ('model = "sim-gpt-oss-20b"', 'model = "m"\ntemperature = -0.5', "models.a", "`temperature` must be >= 0"),
        ('model = "sim-gpt-oss-20b"', 'model = "m"\nanswer_max_tokens = 0', "models.a", "`answer_max_tokens`"),
        ("time_scale = 0", "time_scale = -1", "simulator", "`time_scale` must be >= 0"),
        ("time_scale = 0", "time_scale = 0\nchunk_tokens = 0", "simulator", "`chunk_tokens` must be a positive"),
        ("time_scale = 0", "faults = { error_5xx = 2.0 }", "simulator.faults", "`error_5xx` is a rate"),
        ("time_scale = 0", "faults = { stall = nan }", "simulator.faults", "`stall` must be a finite number"),
        ("limit = 1", "limit = 1\npool = -1", "datasets.d", "`pool` must be >= 0"),
        (
            'kind = "openai_compatible"',
            'kind = "openai_compatible"\ntimeouts = { idle = 0 }',
            "providers.host.timeouts",
            "> 0",
        ),
    ],
)
def test_values_no_run_could_use_fail_in_the_manifest(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    text = manifest(tmp_path).read_text()
    assert old in text
    with pytest.raises(ManifestError) as info:
        parse_manifest(text.replace(old, new, 1), "m.toml")
    assert info.value.path == path
    assert fragment in info.value.problem


# ---- estimate: every error carries the file name --------------------------------------------


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (('"sim-gpt-oss-20b"\nprice = { input = 0.1, output = 0.4 }', '"x"'), "m.toml: models.a.price:"),
        (('model = "sim-gpt-oss-20b"', 'model = "x"\nencoding = "nope_base"'), "m.toml: models.a.encoding:"),
        (("limit = 1", 'limit = 30\n[methods.p]\nkind = "pdp"'), "m.toml: datasets.d.limit:"),
        (("time_scale = 0", "time_scale = -1"), "m.toml: simulator:"),
        (('kind = "aime"', 'kind = "gpqa"'), "aime_2024.jsonl:1: missing field 'Question'"),
        (("[run]", "[run\n"), "m.toml: not valid TOML"),
    ],
)
def test_every_estimate_error_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], where: str
) -> None:
    text = manifest(tmp_path).read_text().replace('name = "pre"', 'name = "pre"\non_missing_encoding = "stop"')
    path = tmp_path / "m.toml"
    path.write_text(text.replace(*change, 1))
    for command in ("estimate", "validate"):
        assert main([command, str(path)]) == 2
        line = one_error_line(capsys)
        assert where in line, line


# ---- fidelity: an Anthropic model the table does not know is asked to think, and says so ----------


@pytest.mark.parametrize(
    ("kind", "model", "fidelity", "noted"),
    [
        ("anthropic", "claude-opus-5", "summarised", True),  # unknown: thinking requested, a warning says so
        ("anthropic", "claude-sonnet-4-20250514", "summarised", False),  # in the table
        ("anthropic", "claude-3-7-sonnet-latest", "raw", False),
        ("anthropic", "claude-3-5-haiku-20241022", "content", False),  # before 3.7: no thinking to ask for
        ("anthropic", "claude-3-opus-20240229", "content", False),
        ("openrouter", "anthropic/claude-opus-5", "content", False),  # other kinds: unknown means content
        ("openai_compatible", "my-local-model", "content", False),
    ],
)
def test_an_unknown_anthropic_model_is_asked_for_thinking_and_told(
    tmp_path: Path, kind: str, model: str, fidelity: str, noted: bool
) -> None:
    url = "http://127.0.0.1:9/v1"
    path = manifest(tmp_path, kind=kind, url=url, key_env="PREFLIGHT_HOST_KEY", model=model)
    plan = plan_model(load_manifest(path), "a")
    assert plan.fidelity == fidelity
    assert bool(plan.fidelity_note) == noted
    request = trace_request(plan, (Message("user", "q"),), (64, 128), seed=1)
    if fidelity in ("raw", "summarised"):
        assert request.reasoning_budget is not None and request.reasoning_budget >= plan.min_thinking_budget
    else:
        assert request.reasoning_budget is None


def test_a_run_on_an_unknown_claude_thinks_and_notes_the_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a Claude model newer than the fidelity table, served by the simulator under its own name
    new_claude = msgspec.structs.replace(BUILTIN_MODELS["sim-claude-sonnet-4"], name="sim-claude-opus-9")
    models = {**BUILTIN_MODELS, new_claude.name: new_claude}
    monkeypatch.setenv("PREFLIGHT_HOST_KEY", SECRET)
    with simulator_thread(SimConfig(time_scale=0, models=models), [("aime", DATA / "aime_2024.jsonl")]) as sim:
        path = manifest(
            tmp_path,
            kind="anthropic",
            url=f"{sim.base_url}/v1",
            key_env="PREFLIGHT_HOST_KEY",
            model="sim-claude-opus-9",
        )
        assert main(["validate", str(path)]) == 0
        assert "models.a: 'sim-claude-opus-9' is not in the fidelity table" in capsys.readouterr().out
        assert main(["run", str(path), "--yes", "--plain"]) == 0
    out = capsys.readouterr().out
    assert "asked for extended thinking" in out
    run_dir = tmp_path / "ledgers" / "pre"
    notes = [r for r in iter_records(run_dir) if isinstance(r, Note) and r.kind == "fidelity_guess"]
    assert len(notes) == 1 and "sim-claude-opus-9" in notes[0].message
    report = json.loads((run_dir / "report.json").read_text())
    (cell,) = report["runs"][0]["cells"]
    assert cell["fidelity"] == "summarised"


# ---- run and validate agree about resuming a changed manifest ----------------------------------------


def test_validate_refuses_a_changed_manifest_as_run_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, kind="sim", url="sim://", model="sim-cot-small")
    assert main(["run", str(path), "--yes", "--plain", "--no-report"]) == 0
    path.write_text(path.read_text().replace("budgets = [64, 128]", "budgets = [64, 256]"))
    capsys.readouterr()
    for command in ("validate", "run"):
        args = [command, str(path)] + (["--yes"] if command == "run" else [])
        assert main(args) == 2
        line = one_error_line(capsys)
        assert line.startswith("error: m.toml changed since") and "--new-run" in line
