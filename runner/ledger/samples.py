"""How traces behave, as the estimate assumes it: a prior before anything is seen, else what
ledgers saw.

**Prior** (`prior_samples`): the trace length is log-normal around a typical length per trace
fidelity, wide (a factor of two either way is within one sigma), given as quantile points. The
figures are round numbers from what providers and the field publish about such models on
competition problems, not fitted to any run: a non-reasoning model's chain of thought runs about
a thousand tokens; a reasoning model thinks for several thousand (OpenAI advises reserving far
more). Answers use a quarter of their cap. A summary is assumed as long as the thinking it
summarises (the dearer case for the answers it is cut into).

**Observed** (`LedgerSamples`): one sample per finished job of a ledger: how long its traced text
ran (and whether it ended by itself), what its trace billed, and its answers' mean output. The
run's own ledger (a pilot, or a resumed run) and earlier runs of the same model id, dataset file
and method kind are read; the estimate prefers the run's own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

from runner.ledger.job_cost import TraceSample
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, RunHeader

# typical length of a trace's text, by trace fidelity (see the module docstring)
TYPICAL_TOKENS = {"content": 1000.0, "raw": 4000.0, "summarised": 4000.0, "hidden": 4000.0}
SPREAD = 0.7  # sigma of the log-normal: a factor of two is within one sigma
ANSWER_FRACTION = 0.25  # a forced answer uses a quarter of its cap
POINTS = 16  # quantile points of the prior

# (model id, dataset file name, method kind): what identifies the same work across runs
Identity = tuple[str, str, str]


def prior_samples(fidelity: str, answer_cap: int) -> list[TraceSample]:
    """Quantile points of the prior for a model of this fidelity."""
    typical = TYPICAL_TOKENS.get(fidelity, TYPICAL_TOKENS["raw"])
    answer = ANSWER_FRACTION * answer_cap
    normal = NormalDist()
    points = []
    for i in range(POINTS):
        length = typical * math.exp(SPREAD * normal.inv_cdf((i + 0.5) / POINTS))
        # the trace bills its text, then its own short answer (a chain of thought includes it)
        output = length if fidelity == "content" else length + answer
        points.append(TraceSample(traced=length, ended=True, output=output, answer_output=answer))
    return points


@dataclass
class _Job:
    """One job's attempts in a ledger, for the execution that completed it."""

    attempts: list[Attempt] = field(default_factory=list)

    def split(self) -> tuple[list[Attempt], list[Attempt]]:
        """(each call's last attempt, the attempts before them: retries)."""
        last: dict[str, Attempt] = {}
        for a in self.attempts:
            if a.call_id not in last or a.attempt > last[a.call_id].attempt:
                last[a.call_id] = a
        final = list(last.values())
        return final, [a for a in self.attempts if a not in final]


@dataclass
class LedgerSamples:
    """Samples of finished jobs, per identity, from some ledgers."""

    by_identity: dict[Identity, list[TraceSample]] = field(default_factory=lambda: defaultdict(list))
    sources: list[str] = field(default_factory=list)

    def read(self, run_dir: Path) -> int:
        """Add one ledger's finished jobs; returns how many."""
        names: dict[tuple[str, str], str] = {}
        attempts: dict[tuple[str, str], _Job] = defaultdict(_Job)
        done: list[JobDone] = []
        for rec in iter_records(run_dir):
            if isinstance(rec, Attempt) and rec.instance is not None:
                attempts[(rec.job_id, rec.instance)].attempts.append(rec)
            elif isinstance(rec, JobDone):
                done.append(rec)
            elif isinstance(rec, RunHeader):
                names.update(identity_names(rec.manifest))
        for rec in done:
            sample = job_sample(rec, attempts.get((rec.job_id, rec.instance), _Job()))
            if sample is not None:
                identity = (
                    names.get(("models", rec.model), rec.model),
                    names.get(("datasets", rec.dataset), rec.dataset),
                    names.get(("methods", rec.method), rec.method),
                )
                self.by_identity[identity].append(sample)
        if done:
            self.sources.append(f"{len(done)} finished jobs in {run_dir}")
        return len(done)


def job_sample(done: JobDone, job: _Job) -> TraceSample | None:
    """What a finished job's trace (or hidden calls) did, and what its retries cost."""
    final, retried = job.split()
    retries = {
        "retries": float(len(retried)),
        "retry_input": float(sum(a.billed_input for a in retried)),
        "retry_output": float(sum(a.billed_output for a in retried)),
    }
    answers = [a for a in final if a.kind == "answer"]
    if done.fidelity == "hidden":
        if not answers:
            return None
        longest = float(max(a.billed_output for a in answers))
        return TraceSample(traced=longest, ended=True, output=longest, answer_output=0.0, **retries)
    trace = next((a for a in final if a.kind == "trace"), None)
    if trace is None:
        return None
    return TraceSample(
        traced=float(done.trace_tokens),
        ended=done.trace_finish == "stop",
        output=float(trace.billed_output),
        answer_output=sum(a.billed_output for a in answers) / len(answers) if answers else 0.0,
        **retries,
    )


def identity_names(manifest: dict[str, object]) -> dict[tuple[str, str], str]:
    """(table, key) -> what identifies it across runs: model id, dataset file name, method kind."""
    out: dict[tuple[str, str], str] = {}
    for table, attr in (("models", "model"), ("datasets", "path"), ("methods", "kind")):
        entries = manifest.get(table)
        for key, value in entries.items() if isinstance(entries, dict) else ():
            if isinstance(value, dict) and isinstance(value.get(attr), str):
                out[(table, key)] = Path(value[attr]).name if attr == "path" else value[attr]
    return out
