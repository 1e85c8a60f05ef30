"""Command-line overrides of a manifest: ``--limit``, ``--model``, ``--method``, ``--budgets``,
``--samples``, ``--max-usd``, ``--batch``, ``--reuse`` and ``--no-reuse``, each validated exactly as the
manifest field it sets.

An override is written into the manifest's document and the document is validated again, so a bad
value fails with the manifest's own rule and error style, naming the field and the flag, e.g.
``demo.toml: sweep.samples (set by --samples): `samples` must be a positive integer, got 0``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from runner.config.manifest import LoadedManifest, Manifest, Overrides, check_references, convert_manifest
from runner.errors import ManifestError

Document = dict[str, dict[str, object]]


def _set_limit(doc: Document, value: object) -> None:
    chosen = doc["sweep"].get("datasets") or list(doc["datasets"])
    assert isinstance(chosen, list)
    for name in chosen:
        doc["datasets"][name]["limit"] = value  # type: ignore[index]


def _set_budgets(doc: Document, value: object) -> None:
    doc["sweep"]["budgets"] = value
    for entry in doc["datasets"].values():  # a dataset's own grid would win over the sweep's
        entry["budgets"] = None  # type: ignore[index]


def _set_reuse_calls(doc: Document, value: object) -> None:
    doc["run"]["reuse_calls"] = value
    if value is False:  # reuse off: the runs the manifest names for reuse are not read either
        doc["run"]["reuse"] = []


def _setter(table: str, key: str) -> Callable[[Document, object], None]:
    def set_field(doc: Document, value: object) -> None:
        doc[table][key] = value

    return set_field


# override -> (its flag, the field it sets, how it sets it in the manifest's document)
_RULES: dict[str, tuple[str, str, Callable[[Document, object], None]]] = {
    "limit": ("--limit", "datasets.*.limit", _set_limit),
    "models": ("--model", "sweep.models", _setter("sweep", "models")),
    "methods": ("--method", "sweep.methods", _setter("sweep", "methods")),
    "budgets": ("--budgets", "sweep.budgets", _set_budgets),
    "samples": ("--samples", "sweep.samples", _setter("sweep", "samples")),
    "max_usd": ("--max-usd", "run.max_usd", _setter("run", "max_usd")),
    "reuse": ("--reuse", "run.reuse", _setter("run", "reuse")),
    "reuse_calls": ("--no-reuse", "run.reuse_calls", _set_reuse_calls),
    "mode": ("--batch", "run.mode", _setter("run", "mode")),
}


def flag_of(name: str) -> str:
    """The command-line flag of an override field (``max_usd`` -> ``--max-usd``)."""
    return _RULES[name][0]


def describe(overrides: Overrides) -> str:
    """The overrides as a command line would give them: ``--limit 3 --model a --model b``."""
    parts: list[str] = []
    for name, value in msgspec.structs.asdict(overrides).items():
        if value is None:
            continue
        flag = flag_of(name)
        if name == "mode":
            parts += [flag] if value == "batch" else []
        elif name == "budgets":
            parts.append(f"{flag} {','.join(map(str, value))}")
        elif isinstance(value, bool):  # a switch: `--no-reuse`
            parts.append(flag)
        elif isinstance(value, list):
            parts += [f"{flag} {item}" for item in value]
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def merged(first: Overrides, then: Overrides) -> Overrides:
    """``first`` with every field ``then`` sets replaced (a resume's recorded overrides, then new flags)."""
    fields = {k: v for k, v in msgspec.structs.asdict(then).items() if v is not None}
    return msgspec.structs.replace(first, **fields)


def apply_overrides(loaded: LoadedManifest, overrides: Overrides) -> LoadedManifest:
    """The manifest with ``overrides`` applied, validated field by field as the file's own fields are.

    Raises:
        ManifestError: an override breaks the field's rule (names the file, the field and the flag).
    """
    if overrides.is_empty():
        return loaded
    source = loaded.path.name
    doc: Document = msgspec.to_builtins(loaded.manifest)
    manifest = loaded.manifest
    for name, value in msgspec.structs.asdict(overrides).items():
        if value is None:
            continue
        flag, path, setter = _RULES[name]
        setter(doc, value)
        try:
            manifest = _validated(doc, source)
        except ManifestError as exc:
            # a rule of the table (`sweep`) names the table: the override knows its field
            where = exc.path if exc.path.startswith(path) else path
            raise ManifestError(source, f"{where} (set by {flag})", exc.problem) from None
    return msgspec.structs.replace(loaded, manifest=manifest, overrides=overrides)


def _validated(doc: Document, source: str) -> Manifest:
    manifest = convert_manifest(doc, source)
    check_references(manifest, source)
    return manifest


def parse_scalar(text: str) -> object:
    """A command-line value as TOML would read it: an integer, a number, else the text itself
    (so a wrong type fails with the field's own rule, not a parser's)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def overrides_from_flags(raw: dict[str, object], source: str) -> Overrides:
    """The overrides the flags give, typed; a value of the wrong type names its field and flag.

    Args:
        raw: override field -> value as parsed from the command line (None: not given).
        source: the manifest's file name, for the error.

    Raises:
        ManifestError: a value is not of the field's type.
    """
    given = {k: v for k, v in raw.items() if v is not None}
    try:
        return msgspec.convert(given, Overrides)
    except msgspec.ValidationError as exc:
        message = str(exc)
        name = message.rpartition("$.")[2].rstrip("`").split("[")[0]
        flag, path, _ = _RULES.get(name, ("", "", None))
        problem = message.split(" - at ")[0]
        raise ManifestError(source, f"{path} (set by {flag})" if flag else "", problem) from None
