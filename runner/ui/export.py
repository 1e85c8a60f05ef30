"""Writing the export table (`runner.analysis.export`) as CSV, JSON Lines, SQLite or Parquet.

Every format keeps the columns' types: numbers as numbers, booleans as booleans (SQLite: 0/1),
missing values as empty (CSV), null (JSON) or NULL. SQLite puts the rows in the table
``answers``. Parquet needs pyarrow, the optional extra ``parquet``; without it `write_export`
raises `ConfigError` saying how to install it, before anything is written.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TextIO

import msgspec

from runner.analysis.export import EXPORT_COLUMNS, ColumnType, ExportRow
from runner.errors import ConfigError

ExportFormat = Literal["csv", "jsonl", "sqlite", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "sqlite", "parquet")
SQLITE_TABLE = "answers"
PARQUET_HINT = "parquet needs pyarrow: pip install 'anytime-runner[parquet]' (or export --format csv, jsonl or sqlite)"


def write_export(rows: Iterable[ExportRow], fmt: ExportFormat, path: Path) -> int:
    """Write the rows to ``path`` (replaced if it exists) in ``fmt``; return how many were written.

    Raises:
        ConfigError: ``parquet`` without pyarrow installed.
    """
    path = Path(path)
    if fmt == "parquet":
        return _parquet(rows, path)
    if fmt == "sqlite":
        return _sqlite(rows, path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            return _csv(rows, handle)
        return _jsonl(rows, handle)


def _csv(rows: Iterable[ExportRow], handle: TextIO) -> int:
    out = csv.writer(handle)
    out.writerow([name for name, _, _ in EXPORT_COLUMNS])
    count = 0
    for row in rows:
        out.writerow([_csv_value(getattr(row, name)) for name, _, _ in EXPORT_COLUMNS])
        count += 1
    return count


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest exact text: the number reads back as the same float
    return value


def _jsonl(rows: Iterable[ExportRow], handle: TextIO) -> int:
    encoder = msgspec.json.Encoder()
    count = 0
    for row in rows:
        handle.write(encoder.encode(row).decode() + "\n")
        count += 1
    return count


_SQL_TYPES: dict[ColumnType, str] = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "INTEGER"}


def _sqlite(rows: Iterable[ExportRow], path: Path) -> int:
    path.unlink(missing_ok=True)
    columns = ", ".join(
        f'"{name}" {_SQL_TYPES[kind]}{"" if nullable else " NOT NULL"}' for name, kind, nullable in EXPORT_COLUMNS
    )
    insert = f"INSERT INTO {SQLITE_TABLE} VALUES ({', '.join('?' for _ in EXPORT_COLUMNS)})"
    names = [name for name, _, _ in EXPORT_COLUMNS]
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE {SQLITE_TABLE} ({columns})")
        cursor = db.executemany(insert, ([getattr(row, n) for n in names] for row in rows))
        count = cursor.rowcount
    db.close()
    return count


def _parquet(rows: Iterable[ExportRow], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(PARQUET_HINT) from None
    arrow_types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    schema = pa.schema([pa.field(name, arrow_types[kind], nullable) for name, kind, nullable in EXPORT_COLUMNS])
    listed = list(rows)
    table = pa.Table.from_pylist([msgspec.structs.asdict(row) for row in listed], schema=schema)
    pq.write_table(table, path)
    return len(listed)


__all__ = ["FORMATS", "PARQUET_HINT", "SQLITE_TABLE", "ExportFormat", "write_export"]
