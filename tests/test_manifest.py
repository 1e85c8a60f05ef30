"""Bad manifests fail with an error that names the file and the field path, and spend nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.config.manifest import DEFAULT_BUDGETS, load_manifest, parse_manifest
from runner.errors import ManifestError

GOOD = """
[run]
name = "t"
[providers.p]
kind = "sim"
[models.a]
provider = "p"
model = "sim-cot-small"
[datasets.d]
kind = "aime"
path = "aime.jsonl"
"""


def with_line(section: str, line: str, text: str = GOOD) -> str:
    return text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (with_line("providers.p", "rpm = -5"), "providers.p", "`rpm` must be a positive integer, got -5"),
        (with_line("providers.p", 'rpm = "fast"'), "providers.p.rpm", "Expected `int | null`, got `str`"),
        (with_line("providers.p", "rpn = 3"), "providers.p", "unknown field `rpn`"),
        (with_line("providers.p", 'api_key_env = "sk-abc123"'), "providers.p", "NAME of an environment variable"),
        (GOOD.replace('provider = "p"', 'provider = "q"'), "models.a.provider", "unknown provider 'q'"),
        (
            GOOD.replace('kind = "aime"', 'kind = "aimee"'),
            "datasets.d.kind",
            "Invalid enum value 'aimee' (expected one of: aime, gpqa, trip, meeting, calendar)",
        ),
        (with_line("datasets.d", "budgets = [512, 256]"), "datasets.d", "strictly increasing"),
        (with_line("datasets.d", "limit = 0"), "datasets.d", "`limit` must be a positive integer"),
        (GOOD + '[sweep]\nmodels = ["a", "b"]\n', "sweep.models[1]", "unknown model 'b'"),
        (GOOD + "[sweep]\nsamples = 0\n", "sweep", "`samples` must be a positive integer"),
        (GOOD.replace('kind = "sim"', 'kind = "openai"'), "providers.p.api_key_env", "required for a remote"),
        (with_line("models.a", "price = { input = -1.0, output = 2.0 }"), "models.a.price", "`input` must be >= 0"),
        (GOOD.replace('name = "t"', 'name = "../escape"'), "run", "`name` may hold"),
        (GOOD.replace('[run]\nname = "t"\n', ""), "", "missing required field `run`"),
        (GOOD + "[simulator.faults]\nreset = 2.0\n", "simulator.faults", "`reset` is a rate and must be in [0, 1]"),
        (GOOD + "[simulator.faults]\nstorm_seconds = -1.0\n", "simulator.faults", "storm_seconds"),
        (GOOD + "[simulator]\nlimit_window_s = 0\n", "simulator", "`limit_window_s` must be in (0, 60]"),
        (with_line("providers.p", "burst_s = 120"), "providers.p", "`burst_s` must be in [0.0625, 60] seconds"),
    ],
)
def test_bad_manifest_names_the_field(text: str, path: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "bad.toml")
    assert info.value.path == path
    assert fragment in info.value.problem
    assert str(info.value).startswith("bad.toml")


def test_not_toml() -> None:
    with pytest.raises(ManifestError, match=r"bad.toml: not valid TOML"):
        parse_manifest("[run\nname=", "bad.toml")


def test_defaults_and_budgets(tmp_path: Path) -> None:
    (tmp_path / "aime.jsonl").write_text('{"id": "1", "problem": "p", "answer": "1"}\n')
    (tmp_path / "m.toml").write_text(GOOD)
    loaded = load_manifest(tmp_path / "m.toml")
    assert loaded.budgets_for("d") == DEFAULT_BUDGETS["aime"]
    assert loaded.selected("methods") == ["cot"]
    assert loaded.resolve("aime.jsonl") == (tmp_path / "aime.jsonl").resolve()


def test_missing_dataset_file(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(GOOD)
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "m.toml")
    assert info.value.path == "datasets.d.path"


def test_validate_command_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.toml").write_text(with_line("providers.p", "rpm = 0"))
    assert main(["validate", str(tmp_path / "m.toml")]) == 2
    err = capsys.readouterr().err
    assert "m.toml: providers.p: `rpm` must be a positive integer, got 0" in err


def test_run_bad_manifest_spends_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.toml").write_text(with_line("run", 'ledger_dir = "out"', with_line("providers.p", "bogus = 1")))
    assert main(["run", str(tmp_path / "m.toml"), "--yes"]) == 2
    assert "unknown field `bogus`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
