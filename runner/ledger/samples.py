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
    """One job's attempts so far in a ledger, for the execution that completed it."""

    trace: Attempt | None = None
    answers: list[Attempt] = field(default_factory=list)


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
            if isinstance(rec, Attempt) and rec.instance is not None and rec.status != "error":
                job = attempts[(rec.job_id, rec.instance)]
                if rec.kind == "trace":
                    job.trace = rec
                elif rec.kind == "answer":
                    job.answers.append(rec)
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
    """What a finished job's trace (or hidden calls) did."""
    answers = [a for a in job.answers if a.priced_from != "unbilled"]
    if done.fidelity == "hidden":
        if not answers:
            return None
        longest = max(a.billed_output for a in answers)
        return TraceSample(traced=float(longest), ended=True, output=float(longest), answer_output=0.0)
    if job.trace is None:
        return None
    answer_output = sum(a.billed_output for a in answers) / len(answers) if answers else 0.0
    ended = done.trace_finish == "stop"
    return TraceSample(
        traced=float(done.trace_tokens),
        ended=ended,
        output=float(job.trace.billed_output),
        answer_output=answer_output,
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
