"""No function in the packages is longer than 60 lines, so a reader can see each one whole.

Ruff caps complexity (C901) and statements (PLR0915); neither counts lines, hence this check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "anytime_sim")
MAX_LINES = 60
# being rewritten (Lane._attempt); strict, so the mark fails once the module passes and must go
BEING_REWRITTEN = {"runner/engine/lane.py"}


def _modules() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _too_long(module: str) -> list[str]:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"), filename=module)
    return [
        f"{module}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="Lane._attempt is being rewritten"))
        if m in BEING_REWRITTEN
        else m
        for m in _modules()
    ],
)
def test_no_function_is_longer_than_60_lines(module: str) -> None:
    assert _too_long(module) == []


def test_the_packages_are_found() -> None:
    assert "runner/ledger/estimate.py" in _modules()
    assert "anytime_sim/server.py" in _modules()
