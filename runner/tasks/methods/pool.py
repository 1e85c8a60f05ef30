"""The held-out pool for PDP / LEAP synthesis, and pairing the pool's graded traces."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Sequence

from runner.tasks.base import Problem
from runner.tasks.methods.base import PoolTrace


def select_pool(problems: Sequence[Problem], evaluated_ids: Collection[str], size: int, seed: int) -> list[Problem]:
    """Up to ``size`` problems not evaluated, chosen by ``seed``, in file order.

    Deterministic for (the candidates' ids, size, seed); never contains an evaluated problem.
    """
    evaluated = set(evaluated_ids)
    candidates = [p for p in problems if p.id not in evaluated]
    if size <= 0 or not candidates:
        return []
    digest = hashlib.sha256(f"pool:{seed}".encode()).digest()
    chosen = set(
        random.Random(int.from_bytes(digest[:8], "big")).sample(range(len(candidates)), min(size, len(candidates)))
    )
    return [p for i, p in enumerate(candidates) if i in chosen]


def preference_pairs(pool: Sequence[PoolTrace], m: int) -> list[tuple[PoolTrace, PoolTrace]]:
    """Best-vs-worst (winner, loser) per pool problem, ties skipped, the ``m`` widest score gaps kept.

    Within a problem the first trace of the highest score wins and the last of the lowest loses
    (pool order is deterministic); between problems a wider gap ranks first, then pool order.
    """
    by_problem: dict[str, list[PoolTrace]] = {}
    for trace in pool:
        by_problem.setdefault(trace.problem_id, []).append(trace)
    pairs: list[tuple[float, int, PoolTrace, PoolTrace]] = []
    for order, traces in enumerate(by_problem.values()):
        best = max(traces, key=lambda t: t.score)
        worst = min(reversed(traces), key=lambda t: t.score)
        if best.score > worst.score:
            pairs.append((best.score - worst.score, order, best, worst))
    pairs.sort(key=lambda p: (-p[0], p[1]))
    kept = sorted(pairs[: max(m, 0)], key=lambda p: p[1])  # shown in pool order
    return [(winner, loser) for _, _, winner, loser in kept]
