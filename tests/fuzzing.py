"""Fuzzing support: how many cases the Hypothesis fuzz tests run, and the count pytest prints.

``ANYTIME_FUZZ_EXAMPLES`` sets the total number of cases over every fuzz property (default
`DEFAULT_TOTAL`, a few hundred that run in seconds); each property takes its share of it.
`bench/soak.py` sets 10,000 or more. After the run pytest prints one line the soak reads:

    fuzz: cases=502 properties=11

(`pytest_terminal_summary` below; registered by ``tests/conftest.py``). ``cases`` counts the
examples the properties actually ran: Hypothesis may stop a property early when it has tried every
case its strategies can make.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

ENV = "ANYTIME_FUZZ_EXAMPLES"
DEFAULT_TOTAL = 500
# every fuzz property's share of the total (the shares add up to 1): a property whose cases cost
# more (a subprocess, a socket) takes a small share, with a least number of cases of its own
SHARES: dict[str, float] = {}

CASES: Counter[str] = Counter()

F = TypeVar("F", bound=Callable[..., Any])


def total_examples() -> int:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_TOTAL
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{ENV} must be a whole number of cases, got {raw!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"{ENV} must be positive, got {value}")
    return value


def fuzz(name: str, share: float, *, least: int = 5) -> Callable[[F], F]:
    """Hypothesis settings for one fuzz property: ``share`` of the total cases (at least ``least``).

    Apply it below ``@given`` so that every case the body runs is counted under ``name``.
    """
    SHARES[name] = share
    examples = max(least, math.ceil(total_examples() * share))

    def decorate(test: F) -> F:
        return settings(
            max_examples=examples,
            deadline=None,
            derandomize=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        )(test)

    return decorate


def count(name: str) -> None:
    """One case of property ``name`` ran (call it first thing in the property's body)."""
    CASES[name] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES:
        terminalreporter.write_line(f"fuzz: cases={sum(CASES.values())} properties={len(CASES)}")
