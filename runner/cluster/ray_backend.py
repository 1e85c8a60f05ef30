"""Placeholder: replaced below."""

from __future__ import annotations

from runner.engine.sweep import Driver
from runner.errors import ConfigError


def require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("--ray: Ray is not installed here; install it with: pip install 'anytime-runner[ray]'") from None


def ray_driver(address: str, workers: int | None) -> Driver:
    raise NotImplementedError
