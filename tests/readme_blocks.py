"""The README's generated blocks: what real commands print, so the README cannot go stale.

A block sits between ``<!-- generated: NAME -->`` and ``<!-- /generated: NAME -->`` in README.md.
`tests/test_readme.py` regenerates every block and fails if one differs. To refresh them after a
change (it runs the demo sweep on the simulator, with no delays, in a temporary folder):

    .venv/bin/python -m tests.readme_blocks --write

Blocks: ``demo-report`` (the demo's quality table, as `anytime run manifests/demo.toml` prints it
at 100 columns), ``exit-codes`` (the one table of `runner.cli.conventions`), ``ledger-jq`` and
``ledger-duckdb`` (the README's queries over the demo's ledger and report.csv, run as written).
Only figures that do not depend on timing are shown: qualities, counts, record types (the
dollars of a cut stream depend on when the cut reached the simulator).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated: (?P=name) -->)", re.DOTALL)

# the README's queries, exactly as it shows them (run from the repository's root)
JQ = [
    "jq -r .type ledgers/demo/ledger.jsonl | sort -u",
    "jq -s -c '[.[] | select(.type == \"attempt\")] | group_by(.kind) | map({kind: .[0].kind, attempts: length})' "
    "ledgers/demo/ledger.jsonl",
]
DUCKDB = [
    """SELECT type, count(DISTINCT call_id || ':' || attempt) AS attempts
FROM read_json_auto('ledgers/demo/ledger.jsonl')
WHERE type IN ('attempt', 'inflight') GROUP BY type ORDER BY type""",
    """SELECT model, budget, round(100 * avg(score), 1) AS quality
FROM read_json_auto('ledgers/demo/ledger.jsonl')
WHERE type = 'snapshot' AND budget IS NOT NULL AND model = 'reasoner'
GROUP BY ALL ORDER BY ALL""",
    """SELECT model, budget, typeof(budget) AS type, quality
FROM 'ledgers/demo/report.csv' WHERE NOT full_trace AND model = 'cot'""",
]


def run_demo(root: Path) -> None:
    """The demo sweep into ``root/ledgers/demo``, with the simulator's delays off (same results)."""
    text = (REPO / "manifests" / "demo.toml").read_text()
    text = text.replace('"../ledgers"', f'"{root / "ledgers"}"').replace('"../data/', f'"{REPO / "data"}/')
    text = re.sub(r"(?m)^time_scale = [0-9.]+", "time_scale = 0.0", text)
    manifest = root / "demo.toml"
    manifest.write_text(text)
    from runner.cli import main

    code = main(["run", str(manifest), "--yes", "--quiet"])
    if code != 0:
        raise RuntimeError(f"the demo exited {code}")


def demo_report(root: Path) -> str:
    """The demo's quality table as the terminal shows it at 100 columns."""
    from rich.console import Console

    from runner.analysis.report import build_report
    from runner.ui.report import quality_rows, report_table

    run = build_report([root / "ledgers" / "demo"]).runs[0]
    title = f"{run.name} · aime24: quality x100 per budget; AI = Anytime Index ({run.mode})"
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(report_table(title, *quality_rows(run, "aime24")))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return (
        "```\n$ anytime run manifests/demo.toml --yes\n...\n"
        + "\n".join(line.rstrip() for line in out.splitlines())
        + "\n```\n"
    )


def exit_codes(_root: Path) -> str:
    from runner.cli.conventions import EXIT_CODES

    rows = ["| code | means | when |", "|---|---|---|"]
    rows += [f"| {code.value} | {name} | {when} |" for code, name, when in EXIT_CODES]
    return "\n".join(rows) + "\n"


def ledger_jq(root: Path) -> str:
    parts = []
    for command in JQ:
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True, cwd=root)
        parts.append(f"$ {command}\n{out.stdout.rstrip()}")
    return "```\n" + "\n\n".join(parts) + "\n```\n"


def ledger_duckdb(root: Path) -> str:
    import duckdb

    parts = []
    with duckdb.connect() as db:
        db.execute(f"SET file_search_path = '{root}'")  # the README's relative paths
        for query in DUCKDB:
            parts.append(f"{query};\n{db.sql(query)}".rstrip())
    return "```sql\n" + "\n\n".join(parts) + "\n```\n"


GENERATORS: dict[str, Callable[[Path], str]] = {
    "demo-report": demo_report,
    "exit-codes": exit_codes,
    "ledger-jq": ledger_jq,
    "ledger-duckdb": ledger_duckdb,
}


def generate(root: Path) -> dict[str, str]:
    """Every block's text, from a demo sweep run into ``root``."""
    run_demo(root)
    return {name: make(root) for name, make in GENERATORS.items()}


def rewrite(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each generated block's body replaced."""
    return BLOCK.sub(lambda m: m.group(1) + blocks[m.group("name")] + m.group(4), text)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="anytime-readme-") as tmp:
        blocks = generate(Path(tmp))
    text = README.read_text()
    missing = set(blocks) - {m.group("name") for m in BLOCK.finditer(text)}
    if missing:
        print(f"README.md has no block for: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    if "--write" in sys.argv:
        README.write_text(rewrite(text, blocks))
        print("README.md: generated blocks refreshed")
    else:
        print(rewrite(text, blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
