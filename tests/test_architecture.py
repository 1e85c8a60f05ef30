"""The tree is the architecture: every part's import rules hold in the code.

Imports are read from the source (every ``import`` and ``from … import`` at any depth, lazy ones
and ``TYPE_CHECKING`` ones included), mapped to parts, and checked against the rules that
`docs/architecture.md` states. A new import that breaks a rule fails here with the file and line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "anytime_sim")
MAX_FUNCTION_LINES = 60

# module prefix -> part (longest prefix wins)
PARTS = {
    "runner.types": "types",
    "runner.errors": "errors",
    "runner": "root",
    "runner.config": "config",
    "runner.tasks": "tasks",
    "runner.tokens": "tokens",
    "runner.providers": "providers",
    "runner.engine": "engine",
    "runner.cluster": "cluster",
    "runner.ledger": "ledger",
    "runner.analysis": "analysis",
    "runner.ui": "ui",
    "runner.ui.view": "viewer",
    "runner.cli": "cli",
    "anytime_sim": "sim",
}

# (from part, to part, why): imports that must never exist
NEVER = [
    ("providers", "engine", "adapters return decisions; the lane acts"),
    ("providers", "ledger", "adapters never price or record"),
    ("providers", "ui", "adapters never draw"),
    ("providers", "config", "an adapter is built from values, it never reads the manifest"),
    ("tasks", "providers", "methods build prompts, not requests"),
    ("tasks", "config", "tasks never depend on the manifest"),
    ("tokens", "providers", "the tokenizer knows no protocol"),
    ("ledger", "engine", "the ledger and the estimate never drive a run"),
    ("ledger", "providers", "the ledger never talks to a provider"),
    ("analysis", "engine", "reports read ledgers, not live state"),
    ("analysis", "ui", "the report model is rendered by the UI, it never renders itself"),
    ("engine", "ui", "the core publishes snapshots; it never imports the display"),
    ("engine", "cli", "the core never imports the command line"),
    ("config", "engine", "planning never imports the engine"),
    ("config", "ledger", "planning never imports the ledger"),
    ("config", "providers", "planning never imports a wire protocol"),
    ("sim", "engine", "the simulator is a separate server"),
    ("sim", "ledger", "the simulator knows nothing of our accounting"),
    ("sim", "providers", "the simulator never shares the client's wire code"),
    ("sim", "ui", "the simulator never draws"),
    ("ui", "cli", "rendering never imports the command line"),
    ("viewer", "engine", "the viewer reads ledgers and transcripts; it never drives a run"),
    ("viewer", "providers", "the viewer never talks to a provider"),
    ("viewer", "sim", "the viewer never starts the simulator"),
    ("viewer", "cli", "the viewer is started by `runner.cli.view`, never the other way"),
    ("ui", "viewer", "the terminal's tables and dashboard never start the web server"),
    ("engine", "cluster", "a sweep is handed a driver; the engine never imports the workers"),
    ("cluster", "ui", "workers and the coordinator never draw"),
    ("cluster", "cli", "workers and the coordinator never import the command line"),
    ("cluster", "sim", "workers reach the simulator the coordinator started, by its URL"),
    ("cluster", "analysis", "the coordinator keeps the run going; reports read its ledger after"),
]
# nothing below the Face imports the viewer (the engine, the ledger, the analysis...): only the CLI starts it
NEVER += [
    (part, "viewer", "only `runner.cli.view` starts the viewer")
    for part in ("config", "tasks", "tokens", "providers", "engine", "cluster", "ledger", "analysis", "sim")
]
# nothing the cluster builds on knows it exists
NEVER += [
    (part, "cluster", "only the command line chooses worker processes or Ray")
    for part in ("config", "tasks", "tokens", "providers", "ledger", "analysis", "sim", "ui")
]
NEVER += [("types", part, "the bottom of the house imports nothing of the package") for part in set(PARTS.values())]
NEVER += [("errors", p, "errors carry data of `runner.types` only") for p in set(PARTS.values()) - {"types"}]

# the only product modules that may import the simulator: they start it
STARTS_THE_SIMULATOR = {"runner.engine.simulator", "runner.engine.probe", "runner.cli.sim"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


MODULES = {module_name(p): p for p in source_files()}


def part_of(module: str) -> str | None:
    best = None
    for prefix in PARTS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return PARTS[best] if best is not None else None


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """(imported module of this package, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield (submodule if submodule in MODULES else node.module), node.lineno


def graph() -> dict[str, set[tuple[str, int]]]:
    edges: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for name, path in MODULES.items():
        for target, line in imports_of(path):
            if part_of(target) is not None and target in MODULES and target != name:
                edges[name].add((target, line))
    return edges


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one member (the import circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_between_modules() -> None:
    edges = {m: {t for t, _ in targets} for m, targets in graph().items()}
    assert strongly_connected(set(MODULES), edges) == []


def test_no_circles_between_parts() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph().items():
        for target, _ in targets:
            a, b = part_of(module), part_of(target)
            if a and b and a != b and "root" not in (a, b):
                edges[a].add(b)
    assert strongly_connected(set(PARTS.values()), edges) == []


def test_no_part_imports_what_it_must_never_import() -> None:
    broken = []
    for module, targets in graph().items():
        for target, line in sorted(targets):
            for source, dest, why in NEVER:
                if part_of(module) == source and part_of(target) == dest:
                    broken.append(f"{MODULES[module].relative_to(REPO)}:{line} imports {target} ({why})")
    assert broken == []


def test_the_product_imports_the_simulator_only_to_start_it() -> None:
    found = [
        f"{MODULES[module].relative_to(REPO)}:{line}"
        for module, targets in graph().items()
        if module.startswith("runner") and module not in STARTS_THE_SIMULATOR
        for target, line in targets
        if part_of(target) == "sim"
    ]
    assert found == []


def test_only_the_ray_backend_imports_ray() -> None:
    """Ray is optional (`pip install 'anytime-runner[ray]'`): the product works without it."""
    found = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                if any(n == "ray" or n.startswith("ray.") for n in names):
                    found.append(str(path.relative_to(REPO)))
    assert set(found) <= {"runner/cluster/ray_backend.py"}


def test_only_the_view_command_imports_the_viewer() -> None:
    found = [
        f"{MODULES[module].relative_to(REPO)}:{line}"
        for module, targets in graph().items()
        if part_of(module) not in ("viewer", None) and module != "runner.cli.view"
        for target, line in targets
        if part_of(target) == "viewer"
    ]
    assert found == []


def test_every_module_says_what_it_is_and_every_part_what_it_may_import() -> None:
    missing = [
        str(p.relative_to(REPO)) for p in MODULES.values() if ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []
    for prefix in PARTS:
        path = REPO / prefix.replace(".", "/") / "__init__.py"
        if prefix.count(".") == 1 and path.exists():
            assert "May import" in (ast.get_docstring(ast.parse(path.read_text())) or ""), path


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_longer_than_the_house_allows(package: str) -> None:
    long = []
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
