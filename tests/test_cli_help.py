"""`anytime --help` and every command's `--help` print their text and exit 0 (argparse %-formats help
strings: a bare "95%" in a summary once broke the top-level help)."""

from __future__ import annotations

import pytest

from runner.cli import main
from runner.cli.main import COMMANDS


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in COMMANDS]])
def test_help_prints_and_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: anytime")
    if argv == ["--help"]:
        assert all(name in out for name in COMMANDS) and "95% bands" in out
