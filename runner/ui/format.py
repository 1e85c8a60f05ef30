"""Numbers for people, one way everywhere: counts, dollars, durations, quality and budgets.

The dashboard, the report tables, the estimate and the ledger summary all format through these,
so a figure reads the same wherever it appears.
"""

from __future__ import annotations

import math

NONE = "—"  # a value that does not exist (not zero)


def count(n: float) -> str:
    """A count in a few characters: ``812``, ``8.2k``, ``12.3k``, ``123k``, ``1.2M``, ``4M``."""
    n = float(n)
    for bound, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= bound:
            scaled = n / bound
            digits = f"{scaled:.1f}" if abs(scaled) < 99.95 else f"{scaled:,.0f}"
            return digits.removesuffix(".0") + suffix
    return f"{n:.0f}" if n == int(n) or abs(n) >= 10 else f"{n:.1f}"


def usd(x: float | None) -> str:
    """Dollars at a precision that shows sub-cent calls: ``$0.0412``, ``$12.34``, ``$1,234``."""
    if x is None:
        return NONE
    if abs(x) < 1:
        return f"${x:.4f}"
    if abs(x) < 1000:
        return f"${x:.2f}"
    return f"${x:,.0f}"


def duration(seconds: float | None) -> str:
    """``45s``, ``1m12s``, ``2h05m``; ``--`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def quality(value: float | None) -> str:
    """A quality in [0, 1] as points x100 with one decimal (``41.7``)."""
    return NONE if value is None else f"{100 * value:.1f}"


def points(value: float) -> str:
    """A figure already in points (the Anytime Index x100) with one decimal (``54.7``)."""
    return f"{value:.1f}"


def budget(tokens: int) -> str:
    """A token budget as a column header: ``512``, ``1k``, ``16k``."""
    return f"{tokens // 1024}k" if tokens >= 1024 and tokens % 1024 == 0 else str(tokens)
