"""CLI conventions: one exit-code table for every subcommand, examples in every --help, the [y/N]
prompt, manifest overrides validated as the fields they set, and shell completion."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.cli import main
from runner.cli.completion import _subparsers
from runner.cli.conventions import EXIT_CODES, ExitCode
from runner.cli.main import COMMANDS, build_parser
from runner.ledger.reader import iter_records, load_state
from runner.ledger.records import RunHeader
from tests.conftest import REPO, write_manifest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

TINY = """
[run]
name = "t"
seed = 1
ledger_dir = "@LEDGERS@"
confirm_above_usd = {confirm}
{run_extra}

[providers.sim]
kind = "sim"
max_concurrency = 8
max_attempts = {attempts}

[models.strong]
provider = "sim"
model = "sim-reasoner-large"

[models.weak]
provider = "sim"
model = "sim-cot-small"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = 3

[sweep]
budgets = [64, 128]

[simulator]
time_scale = 0.0
chunk_tokens = 8
faults = {{ error_5xx = {error_5xx} }}
"""


def tiny(
    tmp_path: Path, *, confirm: float = 100.0, run_extra: str = "", attempts: int = 4, error_5xx: float = 0.0
) -> Path:
    body = TINY.format(confirm=confirm, run_extra=run_extra, attempts=attempts, error_5xx=error_5xx)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_manifest(tmp_path, body)


# --- --help ------------------------------------------------------------------------------------------------


def every_command() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """Every subcommand and sub-action, as the parser (with every module's arguments) has them."""
    found = []
    for name, sub in _subparsers(build_parser(every_command=True)).items():
        found.append(([name], sub))
        found += [([name, action], parser) for action, parser in _subparsers(sub).items()]
    return found


def test_every_subcommand_has_examples_in_its_help() -> None:
    commands = every_command()
    assert {" ".join(words) for words, _ in commands} >= {*COMMANDS, "ledger summary", "ledger export", "ledger verify"}
    for words, parser in commands:
        text = parser.format_help()
        examples = text.split("examples:\n", 1)[1].split("\n\n")[0].splitlines()
        assert any(line.strip().startswith("anytime " + " ".join(words)) for line in examples), words
        assert (
            "exit codes: 0 done, 1 some jobs failed, 2 bad input, 3 stopped by the spend cap, 130 interrupted" in text
        )


def test_top_level_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert all(f"{code.value:<4} {name}" in out for code, name, _ in EXIT_CODES)


# --- exit codes, per subcommand --------------------------------------------------------------------------


def test_run_exit_codes_done_failed_bad_input_and_spend_cap(tmp_path: Path) -> None:
    assert main(["run", str(tiny(tmp_path / "ok")), "--yes", "--quiet", "--no-report"]) == ExitCode.DONE
    failing = tiny(tmp_path / "fail", attempts=1, error_5xx=1.0)
    assert main(["run", str(failing), "--yes", "--quiet", "--no-report"]) == ExitCode.FAILED
    assert main(["run", str(tmp_path / "missing.toml"), "--yes"]) == ExitCode.BAD_INPUT
    capped = tiny(tmp_path / "cap", run_extra="max_usd = 0.0005")
    assert main(["run", str(capped), "--yes", "--quiet", "--no-report"]) == ExitCode.SPEND_CAP


def test_every_other_subcommand_exits_by_the_same_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tiny(tmp_path)
    assert main(["run", str(manifest), "--yes", "--quiet"]) == ExitCode.DONE
    run_dir = tmp_path / "ledgers" / "t"
    nowhere = str(tmp_path / "nowhere")
    expected = [
        (["estimate", str(manifest)], ExitCode.DONE),
        (["estimate", str(manifest), "--samples", "0"], ExitCode.BAD_INPUT),
        (["validate", str(manifest)], ExitCode.DONE),
        (["validate", nowhere], ExitCode.BAD_INPUT),
        (["report", str(run_dir)], ExitCode.DONE),
        (["report", nowhere], ExitCode.BAD_INPUT),
        (["ledger", "summary", str(run_dir)], ExitCode.DONE),
        (["ledger", "summary", nowhere], ExitCode.BAD_INPUT),
        (["ledger", "export", str(run_dir), "--csv", "--out", str(tmp_path / "a.csv")], ExitCode.DONE),
        (["ledger", "export", nowhere, "--csv"], ExitCode.BAD_INPUT),
        (["ledger", "verify", str(run_dir)], ExitCode.DONE),
        (["ledger", "verify", nowhere], ExitCode.BAD_INPUT),
        (["doctor", str(manifest)], ExitCode.DONE),
        (["doctor", nowhere], ExitCode.BAD_INPUT),
        (["completion", "bash"], ExitCode.DONE),
        ([], ExitCode.BAD_INPUT),
    ]
    for argv, code in expected:
        assert main(argv) == code, argv
    for argv in (["completion", "tcsh"], ["sim", "--error-5xx", "2"], ["run", "--no-such-flag"]):
        with pytest.raises(SystemExit) as raised:  # argparse: a bad flag is bad input too
            main(argv)
        assert raised.value.code == ExitCode.BAD_INPUT, argv
    capsys.readouterr()


# --- the [y/N] prompt -----------------------------------------------------------------------------------


def run_in_a_terminal(argv: list[str], answer: bytes, deadline_s: float = 60.0) -> tuple[int, str]:
    """Run ``anytime ARGV`` on a pseudo-terminal, type ``answer`` at the prompt; (exit code, screen)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", *argv], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    screen, answered = b"", False
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        if not answered and "[y/N]" in ANSI.sub("", screen.decode(errors="replace")):
            os.write(leader, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(leader)
    return process.wait(timeout=10), ANSI.sub("", screen.decode(errors="replace"))


def test_the_cost_prompt_says_y_n_and_no_spends_nothing(tmp_path: Path) -> None:
    manifest = tiny(tmp_path, confirm=0.000001)
    code, screen = run_in_a_terminal(["run", str(manifest)], b"\n")  # Enter: the default, no
    assert "Run it? [y/N]" in screen
    assert "Nothing was spent." in screen
    assert code == ExitCode.INTERRUPTED
    assert not (tmp_path / "ledgers" / "t" / "ledger.jsonl").exists()


def test_without_a_terminal_the_prompt_asks_for_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tiny(tmp_path, confirm=0.000001)), "--plain"]) == ExitCode.BAD_INPUT
    assert "is above run.confirm_above_usd ($0.0000); pass --yes to go ahead without asking" in capsys.readouterr().err


# --- overrides --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--samples", "0"], "m.toml: sweep.samples (set by --samples): `samples` must be a positive integer, got 0"),
        (["--limit", "abc"], "m.toml: datasets.*.limit (set by --limit): Expected `int | null`, got `str`"),
        (["--limit", "0"], "m.toml: datasets.*.limit (set by --limit): `limit` must be a positive integer, got 0"),
        (["--model", "nope"], "m.toml: sweep.models[0] (set by --model): unknown model 'nope' (known: strong, weak)"),
        (["--method", "pdp"], "m.toml: sweep.methods[0] (set by --method): unknown method 'pdp' (known: cot)"),
        (["--budgets", "128,64"], "m.toml: sweep.budgets (set by --budgets): budgets must be strictly increasing"),
        (["--max-usd", "-1"], "m.toml: run.max_usd (set by --max-usd): `max_usd` must be > 0, got -1.0"),
    ],
)
def test_a_bad_override_fails_like_the_field_it_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["run", str(tiny(tmp_path)), "--yes", *flags]) == ExitCode.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ledgers").exists()  # nothing spent, nothing written


def test_overrides_narrow_the_run_are_recorded_and_a_full_run_resumes_them(tmp_path: Path) -> None:
    manifest = tiny(tmp_path)
    flags = ["--limit", "1", "--model", "weak", "--budgets", "64,128", "--samples", "1", "--max-usd", "0.5"]
    assert main(["run", str(manifest), "--yes", "--quiet", "--no-report", *flags]) == ExitCode.DONE
    run_dir = tmp_path / "ledgers" / "t"
    (header,) = [r for r in iter_records(run_dir) if isinstance(r, RunHeader)]
    assert header.overrides == {"limit": 1, "models": ["weak"], "budgets": [64, 128], "samples": 1, "max_usd": 0.5}
    assert header.manifest["run"]["max_usd"] == 0.5  # type: ignore[index]
    assert len(load_state(run_dir).completed_jobs) == 1
    # the resume applies what the run recorded (one job, already done: nothing to run)
    assert main(["run", "--resume", str(run_dir), "--yes", "--quiet", "--no-report"]) == ExitCode.DONE
    assert len(load_state(run_dir).completed_jobs) == 1
    # the whole manifest in the same folder keeps the job done and runs the other five
    assert main(["run", str(manifest), "--yes", "--quiet", "--no-report"]) == ExitCode.DONE
    assert len(load_state(run_dir).completed_jobs) == 6


def test_an_override_that_changes_finished_jobs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tiny(tmp_path)
    assert main(["run", str(manifest), "--yes", "--quiet", "--no-report", "--limit", "1"]) == ExitCode.DONE
    # other budgets make other jobs: mixing them into this run's ledger is refused
    assert main(["run", str(manifest), "--yes", "--quiet", "--budgets", "32,64"]) == ExitCode.BAD_INPUT
    assert "--new-run" in capsys.readouterr().err


# --- shell completion --------------------------------------------------------------------------------------


def complete(script: str, line: str) -> list[str]:
    """What bash offers for ``line`` with the completion script loaded."""
    probe = (
        f"{script}\n"
        f'read -ra COMP_WORDS <<< "{line}"\n'
        f'[[ "{line}" == *" " ]] && COMP_WORDS+=("")\n'
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        '_anytime; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    return out.stdout.split()


def test_bash_completion_offers_subcommands_actions_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert set(complete(script, "anytime ")) >= set(COMMANDS)
    assert complete(script, "anytime led") == ["ledger"]
    assert set(complete(script, "anytime ledger ")) >= {"summary", "export", "verify"}
    assert complete(script, "anytime ledger export --sn") == ["--snapshots"]
    assert set(complete(script, "anytime run --")) >= {"--yes", "--limit", "--json-progress", "--max-usd"}
    assert complete(script, "anytime run manifests/de") == ["manifests/demo.toml"]  # positionals: files


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_scripts_name_every_subcommand(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert all(name in script for name in COMMANDS)
    assert "json-progress" in script


# --- output modes for scripts ------------------------------------------------------------------------------


def test_json_progress_is_the_only_thing_on_stdout(tmp_path: Path) -> None:
    manifest = tiny(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "runner.cli",
        "run",
        str(manifest),
        "--yes",
        "--json-progress",
        "--progress-every",
        "0.05",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]  # every line is one object
    kinds = [e["event"] for e in events]
    assert kinds[0] == "phase" and "estimate" in kinds and kinds[-1] == "done" and "progress" in kinds
    last = [e for e in events if e["event"] == "progress"][-1]
    assert last["jobs_done"] == last["jobs_total"] == 6 and last["eta_s"] == 0.0
    assert last["lanes"][0]["name"] == "sim" and events[-1]["exit_code"] == 0
    assert "0 failed; spent" in out.stderr  # what people read goes to stderr


def test_quiet_prints_nothing_and_the_exit_code_tells(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "runner.cli", "run", str(tiny(tmp_path)), "--yes", "--quiet", "--no-report"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
