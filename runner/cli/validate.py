"""`anytime validate MANIFEST`: check a manifest and every dataset record, spend nothing."""

from __future__ import annotations

import argparse

from runner.cli.conventions import add_overrides, with_overrides
from runner.config.manifest import load_manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="path to the sweep manifest (TOML)")
    add_overrides(parser)


def main(args: argparse.Namespace) -> int:
    loaded = with_overrides(load_manifest(args.manifest), args)
    from runner.config.plan import load_problems

    m = loaded.manifest
    counts = {name: len(load_problems(loaded, name)) for name in loaded.selected("datasets")}
    print(f"{loaded.path.name}: ok")
    print(f"  providers: {', '.join(m.providers)}")
    print(f"  models:    {', '.join(loaded.selected('models'))}")
    print(f"  datasets:  {', '.join(f'{k} ({v} problems)' for k, v in counts.items())}")
    print(f"  methods:   {', '.join(loaded.selected('methods'))}")
    print(f"  samples:   {m.sweep.samples}")
    return 0
