"""Expand a manifest into jobs, lazily, with ids that hash what defines the work.

A job is one trace: (model, dataset problem, method, sample). Its id is a hash of everything that
changes the calls it makes (model and its parameters, the problem's text, the method and its
synthesis pool, the sample, the budgets, the run seed), so rerunning a manifest finds finished
jobs in the ledger and skips them, and a changed definition can never reuse a stale result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import msgspec

from runner.config.manifest import LoadedManifest
from runner.errors import ConfigError, DatasetError, ManifestError
from runner.tasks.base import Problem, Task


class JobRef(msgspec.Struct, frozen=True, array_like=True):
    """Where a job sits in the plan: enough to rebuild it (`job_at`) wherever the manifest is
    loaded, so a job can travel between processes as its id and this, not as its problem text."""

    model: str
    dataset: str
    method: str
    sample: int
    index: int  # the problem's position among the dataset's evaluated problems


class Job(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    model: str  # model key in the manifest
    dataset: str  # dataset key
    method: str  # method key
    problem: Problem
    sample: int
    budgets: tuple[int, ...]
    seed: int  # the request seed for this trace (differs per sample)
    index: int = 0  # the problem's position among the dataset's evaluated problems

    @property
    def ref(self) -> JobRef:
        return JobRef(self.model, self.dataset, self.method, self.sample, self.index)


def stable_hash(value: object, length: int = 16) -> str:
    """A short hex digest of plain data, independent of dict order."""
    blob = msgspec.json.encode(value, order="deterministic")
    return hashlib.sha256(blob).hexdigest()[:length]


def get_task(kind: str) -> Task:
    from runner.tasks.registry import get_task as registry_get_task

    return registry_get_task(kind)


@cache
def _load_cached(kind: str, path: Path) -> tuple[Problem, ...]:
    return tuple(get_task(kind).load(path, None))


def all_problems(loaded: LoadedManifest, dataset: str) -> tuple[Problem, ...]:
    """Every problem of a dataset file (before `limit`): the pool for synthesis comes from here."""
    ds = loaded.manifest.datasets[dataset]
    path = loaded.resolve(ds.path)
    try:
        return _load_cached(ds.kind, path)
    except DatasetError:
        raise
    except OSError as exc:
        raise DatasetError(str(path), None, f"cannot read: {exc.strerror}") from None


def load_problems(loaded: LoadedManifest, dataset: str) -> list[Problem]:
    """The evaluated problems of a dataset: the first `limit` of the file, in file order."""
    ds = loaded.manifest.datasets[dataset]
    problems = all_problems(loaded, dataset)
    if not problems:
        raise DatasetError(str(loaded.resolve(ds.path)), None, "the dataset holds no problems")
    return list(problems[: ds.limit] if ds.limit is not None else problems)


def synthesis_pool(loaded: LoadedManifest, dataset: str) -> list[Problem]:
    """The held-out pool for PDP / LEAP: disjoint from the evaluated problems, chosen by seed."""
    from runner.tasks.methods import select_pool

    ds = loaded.manifest.datasets[dataset]
    evaluated = {p.id for p in load_problems(loaded, dataset)}
    return list(select_pool(all_problems(loaded, dataset), evaluated, ds.pool, loaded.manifest.run.seed))


def method_definition(loaded: LoadedManifest, method: str, dataset: str, model: str) -> dict[str, object]:
    """What defines a method's prompts for one (model, dataset): its parameters and its pool."""
    from runner.tasks.methods import get_method

    params = loaded.manifest.methods[method]
    definition: dict[str, object] = msgspec.to_builtins(params)
    if get_method(params.kind, params).needs_synthesis:
        definition["pool"] = [p.id for p in synthesis_pool(loaded, dataset)]
        definition["synthesis_budget"] = synthesis_budget(loaded, method, dataset)
    return definition


def synthesis_budget(loaded: LoadedManifest, method: str, dataset: str) -> int:
    """The fixed budget PDP's pairs are built at: the method's, else the dataset's middle budget."""
    chosen = loaded.manifest.methods[method].budget
    if chosen is not None:
        return chosen
    budgets = loaded.budgets_for(dataset)
    return budgets[len(budgets) // 2]


def model_definition(loaded: LoadedManifest, model: str) -> dict[str, object]:
    m = loaded.manifest.models[model]
    provider = loaded.manifest.providers[m.provider]
    definition: dict[str, object] = msgspec.to_builtins(m)
    definition.pop("price", None)  # a price change re-prices, it does not redo work
    definition["provider_kind"] = provider.kind
    return definition


def expand_jobs(loaded: LoadedManifest, models: list[str] | None = None) -> Iterator[Job]:
    """Yield every job of the sweep, lazily, in a deterministic order.

    Order: model, dataset, method, sample, problem — so the first jobs of every
    (model, dataset, method) group start early and their synthesis is shared.
    """
    for group in job_groups(loaded, models):
        yield from group_jobs(loaded, *group)


def job_groups(loaded: LoadedManifest, models: list[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """The (model, dataset, method) groups of the sweep in plan order: the jobs of a group share
    their synthesis stage and their prompts' prefix."""
    for model in models if models is not None else loaded.selected("models"):
        for dataset in loaded.selected("datasets"):
            for method in loaded.selected("methods"):
                yield model, dataset, method


def group_jobs(loaded: LoadedManifest, model: str, dataset: str, method: str) -> Iterator[Job]:
    """The jobs of one group, lazily: sample by sample, problem by problem."""
    model_def = model_definition(loaded, model)
    method_def = method_definition(loaded, method, dataset, model)
    problems = load_problems(loaded, dataset)
    for sample in range(loaded.manifest.sweep.samples):
        for index, problem in enumerate(problems):
            yield _job(loaded, model_def, method_def, JobRef(model, dataset, method, sample, index), problem)


def job_at(loaded: LoadedManifest, ref: JobRef) -> Job:
    """The job at ``ref``, built as `expand_jobs` builds it (same id).

    Raises:
        ConfigError: ``ref`` names no job of this manifest.
    """
    problems = load_problems(loaded, ref.dataset)
    known = loaded.selected("models"), loaded.selected("datasets"), loaded.selected("methods")
    if (
        ref.model not in known[0]
        or ref.dataset not in known[1]
        or ref.method not in known[2]
        or not 0 <= ref.sample < loaded.manifest.sweep.samples
        or not 0 <= ref.index < len(problems)
    ):
        raise ConfigError(f"{loaded.path.name}: no job at {ref}")
    model_def = model_definition(loaded, ref.model)
    method_def = method_definition(loaded, ref.method, ref.dataset, ref.model)
    return _job(loaded, model_def, method_def, ref, problems[ref.index])


def _job(
    loaded: LoadedManifest, model_def: dict[str, object], method_def: dict[str, object], ref: JobRef, problem: Problem
) -> Job:
    m = loaded.manifest
    statement = stable_hash(problem.statement, 32)
    problem_def = {"kind": m.datasets[ref.dataset].kind, "id": problem.id, "statement": statement}
    definition = {
        "model": model_def,
        "dataset": problem_def,
        "method": method_def,
        "sample": ref.sample,
        "budgets": list(loaded.budgets_for(ref.dataset)),
        "seed": m.run.seed,
    }
    if m.run.answers != "at_cut":  # another answer prompt: other results
        definition["answers"] = m.run.answers
    return Job(
        job_id=stable_hash(definition),
        model=ref.model,
        dataset=ref.dataset,
        method=ref.method,
        problem=problem,
        sample=ref.sample,
        budgets=loaded.budgets_for(ref.dataset),
        seed=sample_seed(model_def, problem_def, ref.sample, m.run.seed),
        index=ref.index,
    )


def sample_seed(model_def: object, problem_def: object, sample: int, run_seed: int) -> int:
    """The request seed of one sample: the same for every method and budget grid.

    Methods are compared on common random draws (the paired design): on a deterministic host, or
    the simulator, two methods differ only by what their prompts change, not by luck of the seed.
    """
    return int(stable_hash({"model": model_def, "problem": problem_def, "sample": sample, "seed": run_seed})[:7], 16)


def pilot_problems(problems: list[Problem], n: int) -> set[str]:
    """``n`` problems spread evenly over a dataset's evaluated problems (files are often ordered
    by difficulty, as AIME's are: the first few would be the easiest)."""
    if n >= len(problems):
        return {p.id for p in problems}
    return {problems[int((i + 0.5) * len(problems) / n)].id for i in range(n)}


def pilot_jobs(loaded: LoadedManifest, problems: int) -> frozenset[str]:
    """The jobs of a pilot (`anytime estimate --pilot N`): in every (model, dataset, method) cell,
    the first sample of ``problems`` problems spread over the dataset. They are jobs of the run
    itself: the run that follows skips them."""
    chosen = {d: pilot_problems(load_problems(loaded, d), problems) for d in loaded.selected("datasets")}
    return frozenset(
        job.job_id for job in expand_jobs(loaded) if job.sample == 0 and job.problem.id in chosen[job.dataset]
    )


def count_jobs(loaded: LoadedManifest, models: list[str] | None = None) -> int:
    """Jobs in the sweep (of ``models`` only, when given), without expanding them."""
    m = loaded.manifest
    per_model = sum(
        len(load_problems(loaded, d)) * len(loaded.selected("methods")) * m.sweep.samples
        for d in loaded.selected("datasets")
    )
    return per_model * len(loaded.selected("models") if models is None else models)


def check_plan(loaded: LoadedManifest) -> None:
    """Fail before spending anything if a dataset, method or pool cannot be built."""
    from runner.tasks.methods import get_method

    for dataset in loaded.selected("datasets"):
        load_problems(loaded, dataset)
        for method in loaded.selected("methods"):
            params = loaded.manifest.methods[method]
            try:
                strategy = get_method(params.kind, params)
            except ConfigError:
                raise
            except (KeyError, ValueError) as exc:
                raise ManifestError(loaded.path.name, f"methods.{method}", str(exc)) from None
            if strategy.needs_synthesis and not synthesis_pool(loaded, dataset):
                raise ManifestError(
                    loaded.path.name,
                    f"datasets.{dataset}.limit",
                    f"method {method!r} needs a held-out pool, but every problem of the file is evaluated: "
                    "lower `limit` so some problems remain for the pool",
                )
