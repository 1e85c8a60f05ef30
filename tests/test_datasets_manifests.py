"""The paper manifests validate, and their datasets and methods can be built offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config.manifest import load_manifest
from runner.config.plan import check_plan, synthesis_pool

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
MODELS = {
    "grok-3",
    "grok-3-mini",
    "gpt-4.1",
    "gpt-4o",
    "openai/gpt-oss-120b",
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
}


@pytest.mark.parametrize("name", ["paper-aime.toml", "paper-gpqa.toml", "paper-naturalplan.toml"])
def test_paper_manifest_validates(name: str) -> None:
    loaded = load_manifest(MANIFESTS / name)
    m = loaded.manifest
    assert {model.model for model in m.models.values()} == MODELS
    assert {method.kind for method in m.methods.values()} == {"cot", "pdp", "pdp_plus"}
    assert m.providers[m.models["grok-3"].provider].api_key_env == "XAI_API_KEY"
    check_plan(loaded)  # every dataset loads and every PDP method has a held-out pool
    for dataset, ds in m.datasets.items():
        expected = (
            [256, 512, 1024, 2048, 4096]
            if ds.kind in ("trip", "meeting", "calendar")
            else [512, 1024, 2048, 4096, 8192, 16384]
        )
        assert list(loaded.budgets_for(dataset)) == expected
        assert synthesis_pool(loaded, dataset)


def test_aime_pool_comes_from_2025_while_2024_is_evaluated() -> None:
    loaded = load_manifest(MANIFESTS / "paper-aime.toml")
    pool = synthesis_pool(loaded, "aime24")
    assert len(pool) == 8 and all(p.id.startswith("2025-") for p in pool)
