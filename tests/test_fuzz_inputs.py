"""Fuzzing the user's inputs (#12, reliability suite): manifests (TOML text and structure) and dataset
files of every kind.

Whatever the input, the CLI answers with exit code 0 or 2; a 2 comes with exactly one line that
names the file and the field path or line, never a traceback, and nothing is spent (a run that
refuses its manifest leaves no ledger folder). `validate`, `estimate` and `run` refuse the same
manifests with the same line (`estimate` works without keys, so it may accept a missing one).
Most cases call the CLI's `main` in-process; a few run `anytime` as a real subprocess.

The number of cases follows ``ANYTIME_FUZZ_EXAMPLES`` (`tests/fuzzing.py`).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.cli import main
from runner.errors import DatasetError
from runner.tasks.registry import get_task
from tests.conftest import DATA
from tests.fuzzing import count, fuzz
from tests.test_sim_support import CALENDAR_ROW, MEETING_ROW, TRIP_ROW

KEY_ENV = "ANYTIME_FUZZ_TEST_KEY"
_serial = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder for every case; a key for the base manifest's remote provider."""
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = "sk-fuzz-key-not-secret"
    yield tmp_path_factory.mktemp("fuzz")
    if previous is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = previous


def cli(*args: str) -> tuple[int, str, str]:
    """``anytime ARGS`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def assert_one_clear_line(code: int, out: str, err: str, *names: str) -> str:
    """Exit 0, or exit 2 with one ``error:`` line naming one of ``names``; never a traceback."""
    assert "Traceback" not in out + err, err
    assert code in (0, 2), (code, err)
    if code == 0:
        return ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    assert any(name in lines[0] for name in names), lines[0]
    return lines[0]


# ---- TOML: a small writer for the structures Hypothesis builds (tomllib only reads) ----------


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)  # JSON escapes are TOML basic-string escapes
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def base_manifest(workdir: Path) -> dict[str, Any]:
    """A valid manifest with every kind of table: a simulated, a remote and a keyless provider."""
    return {
        "run": {"name": "fz", "seed": 1, "ledger_dir": str(workdir / "ledgers"), "max_usd": 1.0},
        "providers": {
            "sim": {"kind": "sim", "rpm": 600, "max_concurrency": 4, "timeouts": {"connect": 5.0}},
            "remote": {"kind": "openai", "api_key_env": KEY_ENV},
            "local": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
        },
        "models": {
            "a": {"provider": "sim", "model": "sim-cot-small", "temperature": 0.7},
            "b": {"provider": "remote", "model": "gpt-4.1"},
            "c": {"provider": "local", "model": "m", "price": {"input": 0.0, "output": 0.0}},
        },
        "datasets": {"d": {"kind": "aime", "path": str(DATA / "aime_2024.jsonl"), "limit": 2, "pool": 1}},
        "methods": {"cot": {"kind": "cot"}, "pdp": {"kind": "pdp", "k": 2, "m": 1}},
        "sweep": {"budgets": [64, 128], "samples": 1, "models": ["a", "b", "c"], "methods": ["cot"]},
        "simulator": {"time_scale": 0.0, "faults": {"error_5xx": 0.0}},
    }


def leaf_paths(doc: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into the document: tables, their fields and list items."""
    paths: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths += leaf_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            paths += leaf_paths(value, (*prefix, i))
    return paths


SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 2**31, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "sim", "sim://", "http://", "https://x", "../x", "~", "aime", "cot", "raw", "a", "d", "\x00"]),
    st.booleans(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
MUTATION = st.tuples(st.sampled_from(["set", "delete", "add"]), st.integers(min_value=0), VALUES, st.text(max_size=12))


def mutate(doc: dict[str, Any], mutation: tuple[str, int, object, str]) -> None:
    op, where, value, name = mutation
    paths = leaf_paths(doc)
    if not paths:
        return
    path = paths[where % len(paths)]
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "set":
        parent[last] = value
    elif isinstance(parent[last], dict):
        parent[last][name or "extra"] = value  # an unknown field, or a new named entry


def write_case(workdir: Path, text: str) -> Path:
    # a fresh file name per case: loaded datasets are cached by path within a process
    path = workdir / f"m{next(_serial)}.toml"
    path.write_text(text)
    return path


def check_commands_agree(path: Path, workdir: Path, *, estimate_valid: bool) -> None:
    """validate, estimate and run accept and refuse alike; a refusal is one clear line and opens no ledger.

    A valid manifest is estimated only when ``estimate_valid`` (an estimate counts every prompt:
    it is the slow part, and a sample of the valid cases is enough to keep both in step).
    """
    code, out, err = cli("validate", str(path))
    line = assert_one_clear_line(code, out, err, path.name, ".jsonl", ".csv", "aime")
    if code == 0 and not estimate_valid:
        return
    e_code, e_out, e_err = cli("estimate", str(path), "--no-history", "--json")
    e_line = assert_one_clear_line(e_code, e_out, e_err, path.name, ".jsonl", ".csv", "aime")
    if code == 0:
        assert e_code == 0, e_err
        return
    if "api_key_env" not in line:  # the one check estimate leaves out: it prices without keys
        assert e_line == line
    r_code, r_out, r_err = cli("run", str(path), "--yes", "--plain", "--no-report")
    assert (r_code, assert_one_clear_line(r_code, r_out, r_err, path.name, ".jsonl", "aime")) == (2, line)
    assert not (workdir / "ledgers").exists(), "a refused run must not open a ledger"


@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), estimate_valid=st.booleans())
@fuzz("manifest structure", 0.13)
def test_fuzzed_manifest_structure(
    workdir: Path, mutations: list[tuple[str, int, object, str]], estimate_valid: bool
) -> None:
    count("manifest structure")
    doc = base_manifest(workdir)
    for mutation in mutations:
        mutate(doc, mutation)
    check_commands_agree(write_case(workdir, toml_document(doc)), workdir, estimate_valid=estimate_valid)


TEXT_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate"]),
        st.integers(min_value=0),
        st.integers(min_value=1, max_value=12),
        st.text(alphabet=st.sampled_from(list("[]{}=\"'.,#\n\\ -_:0123456789abcxyzé\t\x00\x7f")), max_size=6),
    ),
    min_size=1,
    max_size=4,
)


def edit_text(text: str, edits: list[tuple[str, int, int, str]]) -> str:
    for op, at, length, piece in edits:
        i = at % (len(text) + 1)
        if op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + length :]
        elif op == "replace":
            text = text[:i] + piece + text[i + len(piece) :]
        elif op == "duplicate":
            text = text[:i] + text[i : i + length * 4] + text[i:]
        else:
            text = text[:i]
    return text


@given(edits=TEXT_EDITS, estimate_valid=st.booleans())
@fuzz("manifest text", 0.13)
def test_fuzzed_manifest_text(workdir: Path, edits: list[tuple[str, int, int, str]], estimate_valid: bool) -> None:
    count("manifest text")
    text = edit_text(toml_document(base_manifest(workdir)), edits)
    check_commands_agree(write_case(workdir, text), workdir, estimate_valid=estimate_valid)


@given(data=st.binary(max_size=200))
@fuzz("manifest bytes", 0.03)
def test_fuzzed_manifest_bytes(workdir: Path, data: bytes) -> None:
    count("manifest bytes")
    path = workdir / f"m{next(_serial)}.toml"
    path.write_bytes(data)
    code, out, err = cli("validate", str(path))
    assert_one_clear_line(code, out, err, path.name)


# ---- datasets: every kind, record by record ------------------------------------------------------


def _first_jsonl(path: Path) -> dict[str, Any]:
    first: dict[str, Any] = json.loads(path.read_text().splitlines()[0])
    return first


RECORDS: dict[str, dict[str, Any]] = {
    "aime": _first_jsonl(DATA / "aime_2024.jsonl"),
    "gpqa": _first_jsonl(DATA / "gpqa_sample.jsonl"),
    "trip": TRIP_ROW,
    "meeting": MEETING_ROW,
    "calendar": CALENDAR_ROW,
}
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(["", "**", "1**2", "Helsinki**", "5**x", "9:00AM", "10:00AM to 1:00PM", "Monday, 9:00-10:00"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
RECORD_EDIT = st.tuples(st.sampled_from(["set", "delete", "add"]), st.integers(min_value=0), JSON_VALUES)
RECORD_LINE = st.one_of(
    st.tuples(
        st.just("record"),
        st.lists(RECORD_EDIT, max_size=3),
    ),
    st.tuples(st.just("json"), JSON_VALUES),
    st.tuples(st.just("text"), st.text(max_size=40)),
    st.tuples(st.just("blank"), st.just(None)),
)


def record_line(kind: str, line: tuple[str, Any], serial: int) -> str:
    what, detail = line
    if what == "record":
        record = copy.deepcopy(RECORDS[kind])
        record["id" if kind != "gpqa" else "Record ID"] = f"r{serial}"  # distinct ids unless a mutation says
        for mutation in detail:
            mutate(record, (mutation[0], mutation[1], mutation[2], "extra"))
        return json.dumps(record)
    if what == "json":
        return json.dumps(detail)
    return "" if what == "blank" else str(detail).replace("\n", " ")


def gpqa_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = sorted({k for row in rows for k in row})
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
    return out.getvalue()


def check_dataset(kind: str, path: Path) -> None:
    """Loading gives problems or one `DatasetError` naming the file (and the line, for a record);
    every loaded problem renders and grades any text without an error."""
    try:
        problems = get_task(kind).load(path)
    except DatasetError as exc:
        assert str(exc).startswith(str(path)), exc
        assert exc.line is not None or "UTF-8" in exc.problem or "no problems" in exc.problem, exc
        return
    task = get_task(kind)
    for problem in problems[:3]:
        rendered = task.render(problem, 7)
        for output in ("", rendered.gold, "Answer: 1\nSOLUTION: Monday, 9:00 - 10:00", rendered.question[:200]):
            grade = task.grade(output, rendered)
            assert 0.0 <= grade.score <= 1.0


def dataset_manifest(workdir: Path, kind: str, data: Path) -> Path:
    doc = base_manifest(workdir)
    doc["datasets"] = {"d": {"kind": kind, "path": str(data)}}
    doc["sweep"]["models"] = ["a"]
    return write_case(workdir, toml_document(doc))


@given(
    kind=st.sampled_from(sorted(RECORDS)),
    lines=st.lists(RECORD_LINE, min_size=1, max_size=4),
    csv_form=st.booleans(),
    through_cli=st.booleans(),
)
@fuzz("dataset records", 0.17)
def test_fuzzed_dataset_records(
    workdir: Path, kind: str, lines: list[tuple[str, Any]], csv_form: bool, through_cli: bool
) -> None:
    count("dataset records")
    serial = next(_serial)
    texts = [record_line(kind, line, serial * 10 + i) for i, line in enumerate(lines)]
    if kind == "gpqa" and csv_form:
        rows = [json.loads(t) for t in texts if t.startswith("{")]
        rows = [r for r in rows if isinstance(r, dict)]
        path = workdir / f"g{serial}.csv"
        path.write_text(gpqa_csv(rows) if rows else "Question\n")
    else:
        path = workdir / f"{kind}{serial}.jsonl"
        path.write_text("\n".join(texts) + "\n")
    check_dataset(kind, path)
    if through_cli:
        code, out, err = cli("validate", str(dataset_manifest(workdir, kind, path)))
        assert_one_clear_line(code, out, err, path.name)


@given(kind=st.sampled_from(sorted(RECORDS)), data=st.binary(max_size=300))
@fuzz("dataset bytes", 0.04)
def test_fuzzed_dataset_bytes(workdir: Path, kind: str, data: bytes) -> None:
    count("dataset bytes")
    path = workdir / f"b{next(_serial)}.jsonl"
    path.write_bytes(data)
    check_dataset(kind, path)


# ---- a few as real subprocesses: what a user's shell sees ------------------------------------------


@given(mutations=st.lists(MUTATION, min_size=1, max_size=2))
@fuzz("subprocess validate", 0.0002, least=2)
def test_fuzzed_manifests_in_a_real_process(workdir: Path, mutations: list[tuple[str, int, object, str]]) -> None:
    count("subprocess validate")
    doc = base_manifest(workdir)
    for mutation in mutations:
        mutate(doc, mutation)
    path = write_case(workdir, toml_document(doc))
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert_one_clear_line(done.returncode, done.stdout, done.stderr, path.name, ".jsonl", "aime")
