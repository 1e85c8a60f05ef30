"""`anytime validate MANIFEST`: check a manifest as `anytime run` would, and spend nothing.

The checks are the run's own (`runner.engine.preflight`): the manifest's fields, every dataset
record, the methods and their pools, encodings, prices, the key variables of the providers the
selected models use, and whether the run folder's ledger accepts this manifest.
"""

from __future__ import annotations

import argparse

from runner.cli.conventions import add_overrides, with_overrides
from runner.config.manifest import load_manifest
from runner.config.plan import load_problems
from runner.engine.preflight import preflight


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="path to the sweep manifest (TOML)")
    add_overrides(parser)


def main(args: argparse.Namespace) -> int:
    loaded = with_overrides(load_manifest(args.manifest), args)
    checked = preflight(loaded, run_dir=loaded.run_dir())
    m = loaded.manifest
    counts = {name: len(load_problems(loaded, name)) for name in loaded.selected("datasets")}
    print(f"{loaded.path.name}: ok")
    print(f"  providers: {', '.join(loaded.lane_names())}")
    print(f"  models:    {', '.join(f'{k} ({plan.fidelity})' for k, plan in checked.models.items())}")
    print(f"  datasets:  {', '.join(f'{k} ({v} problems)' for k, v in counts.items())}")
    print(f"  methods:   {', '.join(loaded.selected('methods'))}")
    print(f"  samples:   {m.sweep.samples}")
    for warning in checked.warnings:
        print(f"warning: {warning}")
    return 0
