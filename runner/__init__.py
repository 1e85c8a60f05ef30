"""anytime-runner: budgeted reasoning sweeps with exact token cuts and an honest cost ledger."""

__version__ = "0.1.0"

__all__ = ["__version__"]
