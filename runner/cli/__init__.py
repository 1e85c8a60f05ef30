"""Face (commands): the `anytime` command line, one module per subcommand, one entry point (`main`).

May import anything of the product, and `anytime_sim` only to start it (`anytime sim`). A command
parses its arguments, calls the part that does the work, and hands the result to `runner.ui`;
errors meant for the user (`ConfigError` and friends) are printed as one clear line and exit
non-zero.
"""

from runner.cli.main import main

__all__ = ["main"]
