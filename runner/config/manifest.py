"""The sweep manifest: TOML decoded into frozen msgspec Structs.

Every error names the file and the field path (``demo.toml: models.strong.price.input: ...``).
Relative paths inside a manifest (datasets, ledger folder) are resolved against the manifest's
own folder, so a manifest runs the same from any working directory.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from runner.config.kinds import (
    BATCH_INTERFACES,
    NO_DEFAULT_URL_KINDS,
    SIM_SCHEME,
    URL_SCHEMES,
    batch_interface,
    key_optional,
    started_by_run,
)
from runner.errors import ManifestError

ProviderKind = Literal[
    "sim",
    "openai",
    "xai",
    "deepseek",
    "openai_compatible",
    "openrouter",
    "together",
    "llamacpp",
    "openai_responses",
    "anthropic",
    "gemini",
]
Fidelity = Literal["raw", "content", "summarised", "hidden"]
DatasetKind = Literal["aime", "gpqa", "trip", "meeting", "calendar"]
MethodKind = Literal["cot", "pdp", "pdp_plus", "leap"]

# paper.md §8: default budget grids per task family
DEFAULT_BUDGETS: dict[str, tuple[int, ...]] = {
    "trip": (256, 512, 1024, 2048, 4096),
    "meeting": (256, 512, 1024, 2048, 4096),
    "calendar": (256, 512, 1024, 2048, 4096),
    "aime": (512, 1024, 2048, 4096, 8192, 16384),
    "gpqa": (512, 1024, 2048, 4096, 8192, 16384),
}


class Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Shared config: unknown keys are typos and fail loudly.

    Subclasses restate ``frozen=True``: msgspec inherits it at run time, but a type checker reads
    the class keywords of each class alone (PEP 681) and would take a subclass for mutable.
    """


def check_number(name: str, value: float | None, *, least: float = 0.0, strict: bool = False) -> None:
    """A finite number at or above ``least`` (above it when ``strict``); None passes.

    TOML has ``nan`` and ``inf``: a spend cap of ``nan`` would never stop a run.
    """
    if value is None:
        return
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value}")
    if value < least or (strict and value == least):
        relation = ">" if strict else ">="
        raise ValueError(f"`{name}` must be {relation} {least:g}, got {value}")


def check_base_url(url: str) -> None:
    """``http(s)://host[:port][/path]`` or ``sim://[/path]``; what no HTTP client could send to fails here."""
    if not url.startswith(URL_SCHEMES):
        raise ValueError(f"`base_url` must start with http://, https:// or sim://, got {url!r}")
    if url.startswith(SIM_SCHEME):
        return
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"`base_url` is not a valid URL ({exc}): {url!r}") from None
    if not host or any(c.isspace() for c in url):
        raise ValueError(f"`base_url` must name a host, as in http://127.0.0.1:8000/v1, got {url!r}")


class Price(Base, frozen=True):
    """USD per 1M tokens. Reasoning tokens are billed as output."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write_input: float | None = None
    # a request sent in a batch (run.mode = "batch"); left out: the provider's batch discount
    batch_input: float | None = None
    batch_output: float | None = None
    batch_cached_input: float | None = None
    batch_cache_write_input: float | None = None

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            check_number(name, getattr(self, name))


class Timeouts(Base, frozen=True):
    """Seconds. ``first_token`` is time to the first bytes of the body, ``idle`` the longest
    silence after them (keep-alive comments and pings count as bytes). Left out, both follow each
    model's trace fidelity (`runner.config.calls.default_timeouts`): hidden reasoning may think
    silently for minutes."""

    connect: float = 10.0
    first_token: float | None = None
    idle: float | None = None
    total: float = 1800.0

    def __post_init__(self) -> None:
        for name in ("connect", "first_token", "idle", "total"):
            check_number(name, getattr(self, name), strict=True)


class Provider(Base, frozen=True):
    """One lane: a provider key with its limits. Limits left out are learned from headers."""

    kind: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int = 64
    max_attempts: int = 6
    max_usd: float | None = None
    # seconds of each per-minute limit the lane sends at once: half a second's share by default
    # (providers may enforce a minute's limit over 1-second windows); 60 for one that allows a
    # whole minute at once. A 429 halves it (runner.engine.limits).
    burst_s: float = 0.5
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    # the OpenAI-compatible dialect's reasoning field, where the host differs
    reasoning_field: Literal["reasoning_content", "reasoning", "think_tags"] | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}")
        if self.max_concurrency <= 0:
            raise ValueError(f"`max_concurrency` must be a positive integer, got {self.max_concurrency}")
        if self.max_attempts <= 0:
            raise ValueError(f"`max_attempts` must be a positive integer, got {self.max_attempts}")
        if not 1 / 16 <= self.burst_s <= 60:
            raise ValueError(f"`burst_s` must be in [0.0625, 60] seconds, got {self.burst_s}")
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError("`api_key_env` must be the NAME of an environment variable, not a key")
        check_number("max_usd", self.max_usd, strict=True)
        if self.base_url is not None:
            check_base_url(self.base_url)


class Model(Base, frozen=True):
    """A model on a provider, with how its reasoning can be cut and what it costs."""

    provider: str
    model: str
    fidelity: Fidelity | None = None
    encoding: str | None = None
    price: Price | None = None
    temperature: float | None = None
    reasoning_effort: str | None = None
    answer_max_tokens: int = 256
    # room for the visible answer after the reasoning reaches the last budget (raw / summarised)
    trace_answer_tokens: int = 512

    def __post_init__(self) -> None:
        check_number("temperature", self.temperature)
        if self.answer_max_tokens <= 0:
            raise ValueError(f"`answer_max_tokens` must be a positive integer, got {self.answer_max_tokens}")
        if self.trace_answer_tokens < 0:
            raise ValueError(f"`trace_answer_tokens` must be >= 0, got {self.trace_answer_tokens}")


class Dataset(Base, frozen=True):
    kind: DatasetKind
    path: str
    limit: int | None = None
    budgets: list[int] | None = None
    # held-out pool size for PDP / LEAP synthesis (problems disjoint from the evaluated ones)
    pool: int = 8

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"`limit` must be a positive integer, got {self.limit}")
        if self.pool < 0:
            raise ValueError(f"`pool` must be >= 0, got {self.pool}")
        if self.budgets is not None:
            check_budgets(self.budgets)


class Method(Base, frozen=True):
    kind: MethodKind
    # PDP / LEAP synthesis: K traces per pool problem at `budget` tokens, keep M pairs
    k: int = 4
    m: int = 3
    budget: int | None = None

    def __post_init__(self) -> None:
        for name in ("k", "m", "budget"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}")


class Sweep(Base, frozen=True):
    models: list[str] | None = None
    datasets: list[str] | None = None
    methods: list[str] | None = None
    budgets: list[int] | None = None
    samples: int = 1

    def __post_init__(self) -> None:
        if self.samples <= 0:
            raise ValueError(f"`samples` must be a positive integer, got {self.samples}")
        if self.budgets is not None:
            check_budgets(self.budgets)


class Run(Base, frozen=True):
    name: str
    seed: int = 0
    ledger_dir: str = "ledgers"
    max_usd: float | None = None
    confirm_above_usd: float = 1.0
    on_missing_encoding: Literal["fallback", "stop"] = "fallback"
    anytime_mode: Literal["mean_then_max", "per_problem"] = "mean_then_max"
    # when forced answers are sent (docs/caching.md): "at_cut" as each cut is final, in budget
    # order, laid out to share the provider's prompt cache; "after_trace" all at once after the
    # trace, in the standalone layout of earlier versions (to reproduce their runs)
    answers: Literal["at_cut", "after_trace"] = "at_cut"
    # every call's messages, streamed text, cuts, answers and grades in <run>/transcripts.jsonl.gz
    transcripts: bool = True
    # worker processes sharing the run (`--workers`); None: one per core when the lanes may hold
    # more streams at once than one process carries well (runner.cluster.sizing), else 1
    workers: int | None = None
    # earlier run folders whose traces (and answers) this run reuses instead of paying again
    # (docs/reuse.md): relative to `ledger_dir` ("demo" is <ledger_dir>/demo); the run's own
    # transcripts are reused too
    reuse: list[str] = msgspec.field(default_factory=list)
    # false (`--no-reuse`): no call is taken from one already paid for, every call is requested and
    # paid again (this run's transcripts still file its calls by key, for later runs to reuse)
    reuse_calls: bool = True
    # "stream": calls stream through the lanes; "batch": through each provider's batch interface,
    # at batch prices, traces then answers as batches (docs/batch.md)
    mode: Literal["stream", "batch"] = "stream"
    # seconds between two polls of a submitted batch (a simulated provider is polled faster,
    # at its time_scale)
    batch_poll_s: float = 30.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError("`name` may hold letters, digits, '_', '.', '-' and must not start with a symbol")
        check_number("workers", self.workers, least=1)
        check_number("max_usd", self.max_usd, strict=True)
        check_number("confirm_above_usd", self.confirm_above_usd)
        if any(not entry.strip() for entry in self.reuse):
            raise ValueError("`reuse` lists run folders: an entry is empty")
        if self.reuse and not self.reuse_calls:
            raise ValueError("`reuse` names runs to reuse from, but `reuse_calls = false` turns reuse off")
        if self.reuse and self.mode == "batch":
            raise ValueError('`reuse` names runs to reuse from, but batch mode (`mode = "batch"`) reuses nothing')
        check_number("batch_poll_s", self.batch_poll_s, strict=True)


class SimFaults(Base, frozen=True):
    """Fault injection rates in [0, 1], applied per request, deterministic per request seed
    (`anytime_sim.faults` describes each fault as the provider behaviour it models)."""

    error_5xx: float = 0.0
    drop_mid_stream: float = 0.0
    malformed_chunk: float = 0.0
    stall: float = 0.0
    stall_seconds: float = 30.0
    rate_limit_storm: float = 0.0
    storm_seconds: float = 2.0
    trickle: float = 0.0
    trickle_seconds: float = 0.5
    reset: float = 0.0
    # batch interfaces (run.mode = "batch"): a request in a batch that errors, or that expires
    batch_error: float = 0.0
    batch_expire: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "error_5xx",
            "drop_mid_stream",
            "malformed_chunk",
            "stall",
            "rate_limit_storm",
            "trickle",
            "reset",
            "batch_error",
            "batch_expire",
        ):
            value = getattr(self, name)
            check_number(name, value)
            if value > 1:
                raise ValueError(f"`{name}` is a rate and must be in [0, 1], got {value}")
        for name in ("stall_seconds", "storm_seconds", "trickle_seconds"):
            check_number(name, getattr(self, name))


class Simulator(Base, frozen=True):
    """The built-in simulated provider, started on loopback when a provider has kind "sim"."""

    rpm: int | None = None
    tpm: int | None = None
    # the window the per-minute limits are enforced over (1: a second's share at most, as OpenAI may)
    limit_window_s: float = 60.0
    time_scale: float = 1.0
    chunk_tokens: int = 4
    faults: SimFaults = msgspec.field(default_factory=SimFaults)

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}")
        check_number("time_scale", self.time_scale)
        if self.chunk_tokens <= 0:
            raise ValueError(f"`chunk_tokens` must be a positive integer, got {self.chunk_tokens}")
        if not 0 < self.limit_window_s <= 60:
            raise ValueError(f"`limit_window_s` must be in (0, 60] seconds, got {self.limit_window_s}")


class Manifest(Base, frozen=True):
    run: Run
    providers: dict[str, Provider]
    models: dict[str, Model]
    datasets: dict[str, Dataset]
    methods: dict[str, Method] = msgspec.field(default_factory=lambda: {"cot": Method(kind="cot")})
    sweep: Sweep = msgspec.field(default_factory=Sweep)
    simulator: Simulator = msgspec.field(default_factory=Simulator)


class Overrides(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Manifest fields set on the command line (``anytime run m.toml --limit 3``); None: as the file says.

    Applied and validated by `runner.config.overrides.apply_overrides`; recorded in the run
    header, so a resume applies them again.
    """

    limit: int | None = None  # every selected dataset's `limit`
    models: list[str] | None = None  # `sweep.models`
    methods: list[str] | None = None  # `sweep.methods`
    budgets: list[int] | None = None  # `sweep.budgets`, over any dataset's own
    samples: int | None = None  # `sweep.samples`
    max_usd: float | None = None  # `run.max_usd`
    reuse: list[str] | None = None  # `run.reuse`, as absolute paths (`--reuse` names folders from here)
    reuse_calls: bool | None = None  # `run.reuse_calls` (only False is given: `--no-reuse`)
    mode: Literal["stream", "batch"] | None = None  # `run.mode` (``--batch``)

    def is_empty(self) -> bool:
        return self == Overrides()


class LoadedManifest(msgspec.Struct, frozen=True):
    """A validated manifest plus where it came from (and the command-line overrides applied to it)."""

    manifest: Manifest
    path: Path
    sha256: str  # of the file, as it is on disk
    overrides: Overrides = msgspec.field(default_factory=Overrides)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def budgets_for(self, dataset: str) -> tuple[int, ...]:
        ds = self.manifest.datasets[dataset]
        if ds.budgets is not None:
            return tuple(ds.budgets)
        if self.manifest.sweep.budgets is not None:
            return tuple(self.manifest.sweep.budgets)
        return DEFAULT_BUDGETS[ds.kind]

    def selected(self, table: str) -> list[str]:
        chosen = getattr(self.manifest.sweep, table)
        return list(chosen) if chosen is not None else list(getattr(self.manifest, table))

    @property
    def reuses(self) -> bool:
        """Whether calls already paid for may stand in for this run's (docs/reuse.md): not with
        `run.reuse_calls = false`, nor in batch mode, whose calls go through the provider's batch
        interface and never past the reuse hook."""
        return self.manifest.run.reuse_calls and self.manifest.run.mode != "batch"

    def reuse_dirs(self) -> list[Path]:
        """The run folders ``run.reuse`` names, in order (relative entries under ``run.ledger_dir``)."""
        root = self.resolve(self.manifest.run.ledger_dir)
        return [root / Path(entry).expanduser() for entry in self.manifest.run.reuse]

    def run_dir(self, new_run: bool = False) -> Path:
        """The run folder: ``<ledger_dir>/<run.name>``, or a new timestamped sibling for ``new_run``."""
        base = self.resolve(self.manifest.run.ledger_dir) / self.manifest.run.name
        if not new_run:
            return base
        return base.with_name(f"{base.name}-{time.strftime('%Y%m%d-%H%M%S')}")

    def lane_names(self) -> list[str]:
        """The providers the selected models use, sorted: one lane each."""
        return sorted({self.manifest.models[m].provider for m in self.selected("models")})

    def uses_simulator(self) -> bool:
        """Whether any lane needs the built-in simulator started in this process."""
        return any(started_by_run(self.manifest.providers[name]) for name in self.lane_names())


def check_budgets(budgets: list[int]) -> None:
    if not budgets:
        raise ValueError("budgets must not be empty")
    if any(b <= 0 for b in budgets):
        raise ValueError(f"budgets must be positive token counts, got {budgets}")
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(budgets)):
        raise ValueError(f"budgets must be strictly increasing, got {budgets}")


_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _field_path(raw: str) -> str:
    """`$.providers.openai.rpm` / `$.sweep.budgets[2]` -> `providers.openai.rpm` / `sweep.budgets[2]`."""
    return raw.lstrip(".")


def _convert(value: object, kind: type, source: str, prefix: str) -> object:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _MSGSPEC_PATH.search(message)
        inner = _field_path(match.group("path")) if match else ""
        problem = message[: match.start()] if match else message
        problem = problem.replace("Object contains unknown field", "unknown field")
        problem = problem.replace("Object missing required field", "missing required field")
        path = ".".join(part for part in (prefix, inner) if part).replace(".[", "[")
        if problem.startswith("Invalid enum value"):
            choices = _literal_choices(kind, inner)
            if choices:
                problem += f" (expected one of: {', '.join(choices)})"
        raise ManifestError(source, path, problem) from None


def _literal_choices(kind: type, inner: str) -> tuple[str, ...]:
    """The allowed values of a Literal field, following a dotted path through the Structs."""
    current: object = kind
    for part in (p for p in inner.split(".") if p):
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return ()
        hint = typing.get_type_hints(current).get(part)
        if hint is None:
            return ()
        # unwrap Optional[...] / dict[str, X] to the struct or literal inside
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        current = args[-1] if typing.get_origin(hint) in (dict, typing.Union, types.UnionType) and args else hint
    if typing.get_origin(current) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(current))
    return ()


_NAMED_TABLES = {"providers": Provider, "models": Model, "datasets": Dataset, "methods": Method}


def parse_manifest(text: str, source: str) -> Manifest:
    """Decode and validate manifest text; raise ManifestError naming the field path."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(source, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ManifestError(source, "", "not valid TOML: arrays or tables nested too deeply") from None
    # named tables are converted entry by entry so errors name the entry (msgspec says `[...]`)
    for table, kind in _NAMED_TABLES.items():
        entries = doc.get(table)
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            _convert(value, kind, source, f"{table}.{key}")
    manifest = convert_manifest(doc, source)
    check_references(manifest, source)
    return manifest


def convert_manifest(doc: Mapping[str, object], source: str) -> Manifest:
    """A manifest document (TOML decoded) as a validated `Manifest`; errors name the field path."""
    manifest = _convert(doc, Manifest, source, "")
    assert isinstance(manifest, Manifest)
    return manifest


def check_references(m: Manifest, source: str) -> None:
    if not m.providers:
        raise ManifestError(source, "providers", "at least one provider is required")
    if not m.models:
        raise ManifestError(source, "models", "at least one model is required")
    if not m.datasets:
        raise ManifestError(source, "datasets", "at least one dataset is required")
    for name, model in m.models.items():
        if model.provider not in m.providers:
            known = ", ".join(sorted(m.providers))
            raise ManifestError(
                source, f"models.{name}.provider", f"unknown provider {model.provider!r} (known: {known})"
            )
    for table in ("models", "datasets", "methods"):
        chosen = getattr(m.sweep, table)
        if chosen is None:
            continue
        known_names = getattr(m, table)
        for i, item in enumerate(chosen):
            if item not in known_names:
                known = ", ".join(sorted(known_names))
                raise ManifestError(source, f"sweep.{table}[{i}]", f"unknown {table[:-1]} {item!r} (known: {known})")
    _check_providers(m, source)
    if m.run.mode == "batch":
        _check_batch(m, source)


def _check_batch(m: Manifest, source: str) -> None:
    """Batch mode needs a batch interface on every provider the selected models use."""
    models = m.sweep.models if m.sweep.models is not None else list(m.models)
    for key in models:
        name = m.models[key].provider
        kind = m.providers[name].kind
        if batch_interface(kind) is None:
            have = ", ".join(sorted(BATCH_INTERFACES))
            raise ManifestError(
                source,
                f"providers.{name}.kind",
                f"providers.{name} (kind {kind!r}) has no batch interface, which run.mode = 'batch' "
                f"(--batch) needs for models.{key}; kinds with one: {have}. Leave models on this provider "
                "out (--model) or run with run.mode = 'stream'",
            )


def _check_providers(m: Manifest, source: str) -> None:
    """What a provider needs beyond its own fields: a key variable, and a URL where it has no default."""
    for name, provider in m.providers.items():
        if not key_optional(provider) and provider.api_key_env is None:
            raise ManifestError(
                source,
                f"providers.{name}.api_key_env",
                "required for a remote provider: the name of the environment variable holding the key",
            )
        if provider.kind in NO_DEFAULT_URL_KINDS and provider.base_url is None:
            raise ManifestError(
                source,
                f"providers.{name}.base_url",
                f"required for kind {provider.kind!r}: where the server listens, e.g. http://127.0.0.1:8000/v1",
            )


def load_manifest(path: str | Path) -> LoadedManifest:
    """Read, validate and hash a manifest file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ManifestError(str(p), "", f"cannot read manifest: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(str(p), "", "not UTF-8 text") from None
    manifest = parse_manifest(text, p.name)
    for name, ds in manifest.datasets.items():
        resolved = (p.parent / ds.path) if not Path(ds.path).is_absolute() else Path(ds.path)
        if not resolved.expanduser().is_file():
            raise ManifestError(p.name, f"datasets.{name}.path", f"no such file: {resolved}")
    return LoadedManifest(manifest=manifest, path=p.resolve(), sha256=hashlib.sha256(raw).hexdigest())
