"""Shared test set-up: the opt-in --live flag and small manifests over the in-repo data."""

from __future__ import annotations

from pathlib import Path

import pytest

# the fuzz tests' case count on pytest's last lines (`bench/soak.py` reads it)
from tests.fuzzing import pytest_terminal_summary  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--live",
        action="store_true",
        default=False,
        help="also run tests that call real provider APIs (needs API keys in the environment)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--live"):
        return
    skip_live = pytest.mark.skip(reason="talks to real provider APIs: run with --live and API keys set")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)


def write_manifest(tmp_path: Path, body: str, name: str = "m.toml") -> Path:
    """Write a manifest into tmp_path whose ledger folder is tmp_path/ledgers."""
    path = tmp_path / name
    path.write_text(body.replace("@DATA@", str(DATA)).replace("@LEDGERS@", str(tmp_path / "ledgers")))
    return path
