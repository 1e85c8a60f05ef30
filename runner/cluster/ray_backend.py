"""Placeholder: replaced below."""

from __future__ import annotations

import importlib.util

from runner.engine.sweep import Driver
from runner.errors import ConfigError


def require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--ray: Ray is not installed here; install it with: pip install 'anytime-runner[ray]'")


def ray_driver(address: str, workers: int | None) -> Driver:
    raise NotImplementedError
