"""The README's examples are what real commands print today (see tests/readme_blocks.py).

If this fails after a change, refresh the blocks and read the diff before committing:

    .venv/bin/python -m tests.readme_blocks --write
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.readme_blocks import BLOCK, GENERATORS, README, generate


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (apt-get install -y jq; .ci/run does)")
def test_the_readmes_generated_blocks_are_what_the_commands_print(tmp_path: Path) -> None:
    blocks = generate(tmp_path)
    found = {m.group("name"): m.group("body") for m in BLOCK.finditer(README.read_text())}
    assert set(found) == set(GENERATORS), "README.md: a generated block is missing or unknown"
    for name, body in blocks.items():
        assert found[name] == body, (
            f"README.md: the block {name!r} is stale; refresh it with `.venv/bin/python -m tests.readme_blocks "
            f"--write` and read the diff.\n--- README\n{found[name]}\n--- today\n{body}"
        )
