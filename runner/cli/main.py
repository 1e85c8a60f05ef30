"""The `anytime` entry point: the parser, the dispatch to a subcommand module, and the exit codes.

A command module exposes ``add_arguments(parser)`` and ``main(args) -> int``. Errors meant for
the user (`ConfigError` and friends) are printed as one clear line and exit with the code
`runner.cli.conventions` gives them (one table for every subcommand).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from runner import __version__
from runner.cli.conventions import ExitCode, epilog, exit_code_of, exit_codes_help

# name -> (module, one-line help, examples)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "runner.cli.run",
        "run a sweep manifest (resumes if its ledger exists)",
        "anytime run manifests/demo.toml --yes\n  anytime run --resume ledgers/demo\n"
        "  anytime run manifests/paper-aime.toml --limit 3 --model grok-3-mini --max-usd 1\n"
        "  anytime run manifests/demo.toml --yes --json-progress | jq -c 'select(.event == \"progress\")'",
    ),
    "estimate": (
        "runner.cli.estimate",
        "price a manifest offline (calls, tokens, dollars, least wall time), or after a paid pilot",
        "anytime estimate manifests/paper-aime.toml\n  anytime estimate manifests/demo.toml --json\n"
        "  anytime estimate manifests/paper-aime.toml --limit 5 --samples 1\n"
        "  anytime estimate manifests/paper-aime.toml --pilot 2",
    ),
    "report": (
        "runner.cli.report",
        "quality per budget, Anytime Index and spend for one or more runs",
        "anytime report ledgers/demo\n  anytime report ledgers/a ledgers/b --compare",
    ),
    "export": (
        "runner.cli.export",
        "one typed row per job and budget (answers, scores, calls, dollars) as CSV, JSON Lines, SQLite or Parquet",
        "anytime export ledgers/demo --format parquet\n  anytime export ledgers/demo --format csv --out demo.csv",
    ),
    "plot": (
        "runner.cli.plot",
        "figures per dataset: Q(b) with 95% bands, running best, quality vs dollars (PNG, SVG or PDF)",
        "anytime plot ledgers/demo\n  anytime plot ledgers/demo --format pdf --out paper/figures",
    ),
    "validate": (
        "runner.cli.validate",
        "check a manifest and its datasets without spending anything",
        "anytime validate manifests/demo.toml",
    ),
    "ledger": (
        "runner.cli.ledger",
        "inspect a run's ledger: summary, export, verify",
        "anytime ledger summary ledgers/demo\n  anytime ledger export ledgers/demo --csv\n"
        "  anytime ledger verify ledgers/demo",
    ),
    "sim": (
        "runner.cli.sim",
        "serve the built-in simulated provider on 127.0.0.1",
        "anytime sim --port 8900 --data data/aime_2024.jsonl:aime",
    ),
    "view": (
        "runner.cli.view",
        "browse runs in a local web page: curves, problems, traces, comparisons",
        "anytime view\n  anytime view ledgers/demo --port 8800 --no-browser",
    ),
    "doctor": (
        "runner.cli.doctor",
        "check keys and limits with one tiny call per provider (needs --live)",
        "anytime doctor manifests/paper-aime.toml --live",
    ),
    "completion": (
        "runner.cli.completion",
        "print a shell completion script (bash, zsh or fish)",
        "anytime completion bash > ~/.local/share/bash-completion/completions/anytime\n"
        "  anytime completion zsh > ~/.zfunc/_anytime\n"
        "  anytime completion fish > ~/.config/fish/completions/anytime.fish",
    ),
}


def build_parser(selected: str | None = None, *, every_command: bool = False) -> argparse.ArgumentParser:
    """The parser; only ``selected``'s arguments are added (``every_command``: all, for completion)."""
    parser = argparse.ArgumentParser(
        prog="anytime",
        description="Budget-aware anytime reasoning sweeps with an exact token and cost ledger.",
        epilog=f"examples:\n  anytime run manifests/demo.toml --yes\n  anytime COMMAND --help\n\n{exit_codes_help()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"anytime-runner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, summary, examples) in COMMANDS.items():
        cmd = sub.add_parser(
            name,
            help=summary.replace("%", "%%"),  # argparse %-formats help strings ("95% bands")
            description=summary,
            epilog=epilog(examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # only the chosen command's module is imported (keeps `anytime --help` fast)
        if name == selected or every_command:
            importlib.import_module(module_name).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return ExitCode.BAD_INPUT
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.main(args) or 0)
    except BrokenPipeError:
        # output piped into `head` and the like: not an error of ours
        sys.stderr.close()
        return ExitCode.DONE
    except (Exception, KeyboardInterrupt) as exc:
        code = exit_code_of(exc)
        if code is None:
            raise
        if not isinstance(exc, KeyboardInterrupt):
            print(f"error: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
