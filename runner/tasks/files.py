"""Reading dataset files: JSON lines and CSV, with errors that name the file and the line."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from runner.errors import DatasetError

T = TypeVar("T")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line of a JSON-lines file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(str(path), None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DatasetError(str(path), None, "not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(str(path), number, f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise DatasetError(str(path), number, "not valid JSON: nested too deeply") from None
        if not isinstance(row, dict):
            raise DatasetError(str(path), number, f"expected a JSON object, got {type(row).__name__}")
        yield number, row


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number where the record ends, row) for every row of a CSV file with a header."""
    try:
        handle = Path(path).open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DatasetError(str(path), None, f"cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(str(path), reader.line_num, f"not valid CSV: {exc}") from None


def require(
    row: Mapping[str, Any],
    fields: Sequence[str],
    path: Path,
    line: int,
    kinds: type | tuple[type, ...] = str,
) -> None:
    """Raise `DatasetError` for the first of ``fields`` that is missing, empty or of the wrong type."""
    for field in fields:
        if field not in row:
            raise DatasetError(str(path), line, f"missing field {field!r}")
        value = row[field]
        if not isinstance(value, kinds):
            raise DatasetError(
                str(path),
                line,
                f"field {field!r}: expected {_names(kinds)}, got {type(value).__name__}",
            )
        if isinstance(value, str | list | dict) and not value:
            raise DatasetError(str(path), line, f"field {field!r} is empty")


def _names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in kinds)


def take(items: list[T], limit: int | None) -> list[T]:
    return items if limit is None else items[:limit]
