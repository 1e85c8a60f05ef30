"""API keys: read from the environment variable a provider names, never from a file.

A key is only ever held in memory and handed to its adapter; no error message, ledger record or
log line contains one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runner.config.kinds import served_by_simulator
from runner.config.manifest import LoadedManifest
from runner.errors import ManifestError


def api_key_for(loaded: LoadedManifest, name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The key of provider ``name`` (None: the provider needs none).

    Raises:
        ManifestError: the provider names a variable that is not set (names the variable and the fix).
    """
    provider = loaded.manifest.providers[name]
    if served_by_simulator(provider):
        return f"sim-key-{name}"  # the simulator limits per key; this one is not secret
    if provider.api_key_env is None:
        return None
    value = (os.environ if env is None else env).get(provider.api_key_env)
    if not value:
        raise ManifestError(
            loaded.path.name,
            f"providers.{name}.api_key_env",
            f"environment variable {provider.api_key_env} is not set (export it with your {name} API key)",
        )
    return value
