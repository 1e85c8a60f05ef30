"""The one check of a manifest before anything is spent: `anytime run`, `validate`, `estimate` and
`doctor` all call `preflight`, so they cannot disagree about what is valid.

In order (the first failure is the one reported, the same by every command):

1. the datasets load and every method can be built, its held-out pool included (`check_plan`);
2. every selected model has an encoding (or a fallback the manifest allows) and a fidelity;
3. every selected model has a price (`manifest_prices`);
4. every provider the selected models use has its key variable set, when it needs one
   (`check_keys`; `estimate` works offline without keys and skips this);
5. a run folder that already holds finished jobs is not resumed with a manifest that would orphan
   them (`check_manifest_change`; only where a run would resume: `run`, `validate`);
6. every run named for reuse (``run.reuse``, ``--reuse``) is a run folder with transcripts
   (`check_source`): a run without them has nothing to reuse, and saying so costs nothing.

Every failure is a `ConfigError` whose message names the file and the field path or line; the
warnings (an encoding fallback, a guessed fidelity) are what a run notes in its ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.config.calls import ModelPlan, plan_models
from runner.config.keys import check_keys
from runner.config.manifest import LoadedManifest
from runner.config.plan import check_plan
from runner.engine.resume import check_manifest_change, previous_state
from runner.ledger.prices import ModelPrice, PriceTable, manifest_prices
from runner.ledger.reader import LedgerState
from runner.ledger.trace_store import check_source


@dataclass(frozen=True)
class Preflight:
    """What the checks resolved, so that the run does not resolve it again.

    Attributes:
        models: every selected model's plan (encoding, fidelity, timeouts).
        prices: every selected model's price.
        table: the price table the prices came from.
        keys: each used provider's key (empty when keys were not checked); never printed.
        state: the run folder's ledger summary when it was read (None: fresh, or not read).
    """

    models: dict[str, ModelPlan]
    prices: dict[str, ModelPrice]
    table: PriceTable
    keys: dict[str, str | None] = field(repr=False)
    state: LedgerState | None = None

    @property
    def warnings(self) -> list[str]:
        """Encoding fallbacks and guessed fidelities, one line each, naming the model's field path."""
        return [note for plan in self.models.values() for note in plan.notes]


def preflight(
    loaded: LoadedManifest,
    *,
    keys: bool = True,
    env: Mapping[str, str] | None = None,
    run_dir: Path | None = None,
) -> Preflight:
    """Check everything about ``loaded`` that can fail without a call (see the module docstring).

    Args:
        keys: check the key variables (``estimate`` leaves them out: it works without keys).
        env: the environment to read keys from (default ``os.environ``).
        run_dir: the run folder a run would write to; its ledger must accept this manifest.

    Raises:
        ConfigError: the first problem, naming the file and the field path or line.
    """
    check_plan(loaded)
    models = plan_models(loaded)
    table = PriceTable.load()
    prices = manifest_prices(loaded, table)
    found = check_keys(loaded, env) if keys else {}
    state = previous_state(run_dir) if run_dir is not None else None
    if state is not None and run_dir is not None:
        check_manifest_change(loaded, state, run_dir)
    for source in loaded.reuse_dirs():
        check_source(source, required=True)
    return Preflight(models=models, prices=prices, table=table, keys=found, state=state)
