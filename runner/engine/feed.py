"""Which job a lane runs next: every lane fed at once, and the groups of a lane taking turns.

Each lane (one provider key) has its own feeder and its own workers (`runner.engine.sweep`), so
lanes with different limits run side by side, each up to its own limits: a sweep over two
providers takes about as long as the slower one alone, not the sum. Within a lane the
(model, dataset, method) groups take turns, one job each: every group's synthesis stage starts at
once instead of the whole lane waiting on the first group's, and a model's jobs never wait for
another model's to run out.

Jobs are expanded lazily, a job per group at a time as the lane's workers free up: a million-job
plan is never held in memory. A job is known by its id everywhere (a resumed run skips the ids
the ledger finished) and can be rebuilt from its `JobRef` by `runner.config.plan.job_at`, so a
coordinator handing jobs to worker processes can send an id and a ref instead of the job; this
order is then the coordinator's, and a worker's feed is what it is handed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TypeVar

from runner.config.manifest import LoadedManifest
from runner.config.plan import Job, group_jobs, job_groups

T = TypeVar("T")


def interleave(sources: Iterable[Iterator[T]]) -> Iterator[T]:
    """One item of each source in turn, lazily, each source dropped once it runs out."""
    turns = deque(sources)
    while turns:
        source = turns.popleft()
        for item in source:
            yield item
            turns.append(source)
            break


def lane_jobs(loaded: LoadedManifest, models: list[str]) -> Iterator[Job]:
    """The jobs of one lane's models, their (model, dataset, method) groups taking turns."""
    return interleave(group_jobs(loaded, *group) for group in job_groups(loaded, models))
