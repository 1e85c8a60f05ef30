"""A manifest mixing xAI, OpenAI, Anthropic, Gemini and an OpenAI-compatible host runs on the
simulator, each provider on its own wire protocol, and the report labels each model's fidelity."""

from __future__ import annotations

import json
from pathlib import Path

from runner.cli import main
from tests.conftest import DATA, REPO

EXPECTED_FIDELITY = {
    "grok-3-mini": "raw",  # xAI: reasoning_content streams as generated
    "grok-3": "content",  # non-reasoning: the chain of thought is the answer text
    "o4-mini": "hidden",  # o-series via Chat Completions: one call per budget
    "claude": "summarised",  # Anthropic thinking summary
    "gpt-oss-120b": "raw",  # OpenAI-compatible host, delta.reasoning
    "gemini-flash": "summarised",  # Gemini thought summaries
}


def test_mixed_providers_report_each_fidelity(tmp_path: Path) -> None:
    text = (REPO / "manifests" / "sim-mixed.toml").read_text()
    text = text.replace('"../data/', f'"{DATA}/').replace('ledger_dir = "../ledgers"', f'ledger_dir = "{tmp_path}"')
    text = text.replace("time_scale = 0.1", "time_scale = 0.0").replace("limit = 6", "limit = 2")
    text = text.replace("samples = 1", "samples = 2")
    manifest = tmp_path / "mixed.toml"
    manifest.write_text(text)
    assert main(["run", str(manifest), "--yes", "--plain"]) == 0
    report = json.loads((tmp_path / "sim-mixed" / "report.json").read_text())
    cells = {cell["model"]: cell for cell in report["runs"][0]["cells"]}
    assert {model: cell["fidelity"] for model, cell in cells.items()} == EXPECTED_FIDELITY
    for model, cell in cells.items():
        assert cell["summary"]["problems"] == 2, model
        assert cell["summary"]["samples"] == 4, model
        assert cell["usd_total"] > 0, model
    # hidden reasoning: the provider bills tokens we could never see, and the report says so
    assert cells["o4-mini"]["counted_to_billed"] < 0.5
    markdown = (tmp_path / "sim-mixed" / "report.md").read_text()
    assert all(label in markdown for label in ("raw", "content", "hidden", "summarised"))


def test_small_budgets_on_anthropic_respect_its_thinking_minimum(tmp_path: Path) -> None:
    # Anthropic rejects budget_tokens < 1024 (the simulator too, with a 400): budgets of 64-256 must
    # still run, the thinking budget raised to the protocol's minimum and the cap sized around it
    text = (REPO / "manifests" / "sim-mixed.toml").read_text()
    text = text.replace('"../data/', f'"{DATA}/').replace('ledger_dir = "../ledgers"', f'ledger_dir = "{tmp_path}"')
    text = text.replace("time_scale = 0.1", "time_scale = 0.0").replace("limit = 6", "limit = 1")
    text = text.replace("budgets = [256, 512, 1024, 2048]", "budgets = [64, 128, 256]")
    text = text.replace("samples = 1", 'samples = 1\nmodels = ["claude"]')
    manifest = tmp_path / "small.toml"
    manifest.write_text(text)
    assert main(["run", str(manifest), "--yes", "--plain"]) == 0
    report = json.loads((tmp_path / "sim-mixed" / "report.json").read_text())
    (cell,) = report["runs"][0]["cells"]
    assert cell["model"] == "claude" and cell["summary"]["problems"] == 1
