"""API keys: read from the environment variable a provider names, never from a file.

A key is only ever held in memory and handed to its adapter; no error message, ledger record or
log line contains one. `anytime run`, `validate` and `doctor` decide whether a provider needs a
key with one rule (`runner.config.kinds.needs_key`) and check only the providers the selected
models use (`LoadedManifest.lane_names`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runner.config.kinds import needs_key, served_by_simulator
from runner.config.manifest import LoadedManifest
from runner.errors import ManifestError


def key_is_set(loaded: LoadedManifest, name: str, env: Mapping[str, str] | None = None) -> bool | None:
    """Whether provider ``name``'s key variable is set (None: the provider needs no key).

    Reads no more of the value than whether it is non-empty.
    """
    provider = loaded.manifest.providers[name]
    if not needs_key(provider):
        return None
    return bool((os.environ if env is None else env).get(provider.api_key_env or ""))


def missing_key_error(loaded: LoadedManifest, name: str) -> ManifestError:
    """The error for a provider whose key variable is not set: names the variable, never a value."""
    variable = loaded.manifest.providers[name].api_key_env
    return ManifestError(
        loaded.path.name,
        f"providers.{name}.api_key_env",
        f"environment variable {variable} is not set (export it with your {name} API key)",
    )


def api_key_for(loaded: LoadedManifest, name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The key of provider ``name`` (None: the provider needs none).

    Raises:
        ManifestError: the provider names a variable that is not set (names the variable and the fix).
    """
    provider = loaded.manifest.providers[name]
    if served_by_simulator(provider):
        return f"sim-key-{name}"  # the simulator limits per key; this one is not secret
    if key_is_set(loaded, name, env) is None:
        return None
    value = (os.environ if env is None else env).get(provider.api_key_env or "")
    if not value:
        raise missing_key_error(loaded, name)
    return value


def check_keys(loaded: LoadedManifest, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The key of every provider the selected models use; the first missing one raises.

    Raises:
        ManifestError: a key variable is not set.
    """
    return {name: api_key_for(loaded, name, env) for name in loaded.lane_names()}
