"""The ledger: round trip, torn-tail recovery, resume state, and survival of `kill -9`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from runner.errors import LedgerError
from runner.ledger.reader import ReadInfo, iter_records, ledger_path, load_state
from runner.ledger.records import Attempt, InFlight, JobDone, Note, RunHeader, Snapshot, Synthesis, in_flight
from runner.ledger.writer import open_ledger, recover


def header(run_id: str = "r") -> RunHeader:
    return RunHeader(
        run_id=run_id,
        tool_version="0",
        started_at=1.0,
        manifest_path="m.toml",
        manifest_sha256="ab",
        manifest={"run": {"name": run_id}},
        prices={"m": {"input": 1.0, "output": 2.0}},
    )


def attempt(i: int, job: str = "j1", usd: float = 0.25, provider: str = "p") -> Attempt:
    return Attempt(
        call_id=f"c{i}",
        job_id=job,
        kind="trace",
        provider=provider,
        model="m",
        attempt=1,
        status="ok",
        input_tokens=10,
        output_tokens=20,
        usd=usd,
    )


def done(job: str) -> JobDone:
    return JobDone(
        job_id=job,
        instance="i",
        model="m",
        dataset="d",
        problem_id="p",
        method="cot",
        sample=0,
        fidelity="raw",
        trace_tokens=5,
        trace_finish="stop",
    )


async def test_round_trip_every_record_kind(tmp_path: Path) -> None:
    records = [
        header(),
        attempt(1),
        Snapshot(
            job_id="j1",
            instance="i",
            model="m",
            dataset="d",
            problem_id="p",
            method="cot",
            sample=0,
            budget=256,
            tokens=200,
            answer="42",
            score=1.0,
        ),
        done("j1"),
        Synthesis(key="k", model="m", dataset="d", method="pdp", pool_problem_ids=["a"], examples=[{"x": 1}], text="t"),
        Note(at=2.0, kind="spend_cap", message="cap"),
    ]
    async with open_ledger(tmp_path) as writer:
        for record in records:
            writer.append(record)
        await writer.flush()
        assert list(iter_records(tmp_path)) == records  # durable before close
    assert list(iter_records(tmp_path)) == records
    # plain JSON Lines that any tool reads: one object per line, tagged by "type"
    lines = ledger_path(tmp_path).read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["run", "attempt", "snapshot", "job", "synthesis", "note"]


async def test_close_writes_what_is_queued_without_flush(tmp_path: Path) -> None:
    async with open_ledger(tmp_path, batch_records=10_000, max_delay_s=3600) as writer:
        for i in range(1000):
            writer.append(attempt(i))
    assert sum(1 for _ in iter_records(tmp_path)) == 1000


async def test_append_after_close_is_an_error(tmp_path: Path) -> None:
    async with open_ledger(tmp_path) as writer:
        pass
    with pytest.raises(LedgerError, match="append after close"):
        writer.append(attempt(1))


async def test_torn_tail_is_cut_and_noted(tmp_path: Path) -> None:
    async with open_ledger(tmp_path) as writer:
        writer.append(header())
        writer.append(attempt(1))
    path = ledger_path(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"type":"attempt","call_id":"c2","job_')  # a crash mid-write
    info = ReadInfo()
    assert [type(r).__name__ for r in iter_records(tmp_path, info)] == ["RunHeader", "Attempt"]  # skipped
    assert (info.lines, info.torn_line, info.torn_bytes) == (2, 3, 38)
    async with open_ledger(tmp_path) as writer:
        writer.append(attempt(3))
    records = list(iter_records(tmp_path))
    assert isinstance(records[2], Note) and records[2].kind == "torn_line"
    assert "38 bytes" in records[2].message
    assert [r.call_id for r in records if isinstance(r, Attempt)] == ["c1", "c3"]
    assert path.read_bytes().startswith(whole)


def test_recover_a_file_that_is_one_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"type":"run"')
    assert recover(path) == 13
    assert path.read_bytes() == b""
    assert recover(path) == 0


def test_a_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(json.dumps({"type": "note", "at": 1.0, "kind": "k", "message": "m"}) + "\n{oops}\n")
    with pytest.raises(LedgerError, match=r"ledger.jsonl:2: not a ledger record"):
        list(iter_records(tmp_path))
    with pytest.raises(LedgerError, match=r"ledger.jsonl:2"):
        load_state(tmp_path)


def test_reading_a_missing_ledger_says_where(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger here"):
        list(iter_records(tmp_path))
    assert load_state(tmp_path).completed_jobs == set()


async def test_state_for_resume(tmp_path: Path) -> None:
    async with open_ledger(tmp_path) as writer:
        writer.append(header("a"))
        writer.append(attempt(1, "j1", 0.5, "p"))
        writer.append(attempt(2, "j1", 0.25, "p"))
        writer.append(attempt(3, "j2", 1.0, "q"))
        writer.append(done("j1"))
        writer.append(
            Synthesis(key="k", model="m", dataset="d", method="pdp", pool_problem_ids=[], examples=[], text="t")
        )
        writer.append(header("b"))
    state = load_state(tmp_path)
    assert state.completed_jobs == {"j1"}
    assert state.total_usd == pytest.approx(1.75)
    assert state.usd_by_job == {"j1": pytest.approx(0.75), "j2": pytest.approx(1.0)}
    assert state.usd_by_provider == {"p": pytest.approx(0.75), "q": pytest.approx(1.0)}
    assert [h.run_id for h in state.headers] == ["a", "b"]
    assert set(state.synthesis) == {"k"}
    assert state.attempts == 3
    assert state.unfinished_jobs == {"j2"}


# ---- kill -9 -----------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, anyio
    from pathlib import Path
    from runner.ledger.writer import open_ledger
    from runner.ledger.records import Attempt

    async def main(run_dir, start, batch):
        async with open_ledger(Path(run_dir), batch_records=batch, max_delay_s=0.001) as w:
            i = start
            while True:
                for _ in range(97):
                    w.append(Attempt(call_id=f"c{i:09d}", job_id="j" * (i % 300), kind="answer", provider="p",
                                     model="m", attempt=1, status="ok", error="x" * (i % 2000), usd=0.001))
                    i += 1
                await w.flush()
                print(i, flush=True)  # every record before i is acknowledged as durable

    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    """
)


def _kill_while_appending(run_dir: Path, start: int, batch: int, acks: int) -> int:
    """Run a writer, SIGKILL it after `acks` acknowledged flushes; return the records acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run_dir), str(start), str(batch)], stdout=subprocess.PIPE, text=True
    )
    acknowledged = start
    try:
        assert proc.stdout is not None
        for _ in range(acks):
            line = proc.stdout.readline()
            assert line, "the writer exited before it was killed"
            acknowledged = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    return acknowledged


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_loses_nothing_acknowledged_and_leaves_no_partial_record(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    start = 0
    for _round in range(2):  # crash, reopen (recovers), crash again
        acknowledged = _kill_while_appending(tmp_path, start, rng.choice([1, 7, 64, 512]), rng.randint(1, 40))
        raw = ledger_path(tmp_path).read_bytes()
        ids = [int(r.call_id[1:]) for r in iter_records(tmp_path) if isinstance(r, Attempt)]
        # every acknowledged record is there, in order, once; at most the unacknowledged tail is missing
        assert ids[:acknowledged] == list(range(acknowledged))
        assert ids == list(range(len(ids)))
        whole = raw.rsplit(b"\n", 1)[0] + b"\n" if not raw.endswith(b"\n") else raw
        assert sum(1 for line in whole.splitlines() if line) == len(ids) + _notes(tmp_path)
        start = len(ids)
    assert load_state(tmp_path).attempts == start


def _notes(run_dir: Path) -> int:
    return sum(1 for r in iter_records(run_dir) if isinstance(r, Note))


async def test_append_sync_is_durable_at_once_and_keeps_order(tmp_path: Path) -> None:
    async with open_ledger(tmp_path, batch_records=10_000, max_delay_s=3600) as writer:
        writer.append(attempt(1))
        writer.append_sync(Note(at=1.0, kind="interrupted", message="signal"))
        kinds = [type(r).__name__ for r in iter_records(tmp_path)]
        assert kinds == ["Attempt", "Note"]
        await writer.flush()  # nothing left to wait for


# ---- calls in flight at a crash ---------------------------------------------------------------


async def test_in_flight_spend_is_sampled_and_superseded_by_the_attempt(tmp_path: Path) -> None:
    spent = [0.0]

    def so_far() -> InFlight:
        return in_flight(msgspec.structs.replace(attempt(7), status="interrupted", usd=spent[0]))

    async with open_ledger(tmp_path) as writer:
        writer.append(header())
        with writer.track(so_far, min_usd=0.001):
            for step in (0.0005, 0.002, 0.0025, 0.004):
                spent[0] = step
                writer._sample_in_flight()  # what the flusher does before each batch
            await writer.flush()
        writer.append(msgspec.structs.replace(attempt(7), usd=0.005))
    samples = [r.usd for r in iter_records(tmp_path) if isinstance(r, InFlight)]
    # the first growth (the prompt) at once, then only growth of at least min_usd
    assert samples == [0.0005, 0.002, 0.004]
    async with open_ledger(tmp_path):
        pass
    assert load_state(tmp_path).total_usd == pytest.approx(0.005)  # the Attempt, not the samples
    assert not any(isinstance(r, Note) for r in iter_records(tmp_path))


async def test_a_crash_mid_call_is_ledgered_once_from_its_last_in_flight_record(tmp_path: Path) -> None:
    async with open_ledger(tmp_path) as writer:
        writer.append(header())
        writer.append(in_flight(msgspec.structs.replace(attempt(1), usd=0.001)))
        writer.append(in_flight(msgspec.structs.replace(attempt(1), usd=0.003)))
        writer.append(in_flight(msgspec.structs.replace(attempt(2), usd=0.002)))
        writer.append(attempt(2, usd=0.004))  # call 2 finished; call 1 was cut by the crash
    async with open_ledger(tmp_path) as writer:
        writer.append(header("resumed"))
    recovered = [r for r in iter_records(tmp_path) if isinstance(r, Attempt) and r.status == "interrupted"]
    assert [(r.call_id, r.usd, r.error_class) for r in recovered] == [("c1", 0.003, "crash")]
    notes = [r for r in iter_records(tmp_path) if isinstance(r, Note)]
    assert [n.kind for n in notes] == ["recovered_in_flight"]
    async with open_ledger(tmp_path):
        pass  # a second open finds nothing new to recover
    assert load_state(tmp_path).total_usd == pytest.approx(0.007)


# ---- flat in-flight records, and format-1 ledgers that nested them ------------------------------


async def test_an_in_flight_record_is_flat_and_names_its_attempt(tmp_path: Path) -> None:
    async with open_ledger(tmp_path) as writer:
        writer.append(header())
        writer.append(in_flight(msgspec.structs.replace(attempt(1), usd=0.001)))
        writer.append(attempt(1, usd=0.002))
    lines = ledger_path(tmp_path).read_bytes().splitlines()
    sample = msgspec.json.decode(lines[1])
    assert sample["type"] == "inflight"
    assert (sample["call_id"], sample["attempt"], sample["usd"]) == ("c1", 1, 0.001)
    assert not any(isinstance(value, dict) for value in sample.values())  # nothing nested
    # what `grep -c '"type":"attempt"'` or jq counts: one attempt, not two
    assert sum(line.count(b'"type":"attempt"') for line in lines) == 1


def format_1_in_flight(record: Attempt) -> bytes:
    """An in-flight line as format 1 wrote it: the attempt nested as the record's only field."""
    return b'{"type":"inflight","attempt":' + msgspec.json.encode(record) + b"}\n"


async def test_a_format_1_ledger_with_nested_in_flight_records_is_read_and_recovered(tmp_path: Path) -> None:
    old = [
        msgspec.json.encode(msgspec.structs.replace(header(), format_version=1)) + b"\n",
        format_1_in_flight(msgspec.structs.replace(attempt(1), status="interrupted", usd=0.001)),
        format_1_in_flight(msgspec.structs.replace(attempt(1), status="interrupted", usd=0.003)),
        format_1_in_flight(msgspec.structs.replace(attempt(2, job="j2"), status="interrupted", usd=0.001)),
        msgspec.json.encode(attempt(2, job="j2", usd=0.002)) + b"\n",  # call 2 ended; call 1 was cut by a crash
    ]
    ledger_path(tmp_path).write_bytes(b"".join(old))
    samples = [r for r in iter_records(tmp_path) if isinstance(r, InFlight)]
    assert [(r.call_id, r.attempt, r.usd, r.job_id) for r in samples] == [
        ("c1", 1, 0.001, "j1"),
        ("c1", 1, 0.003, "j1"),
        ("c2", 1, 0.001, "j2"),
    ]
    assert load_state(tmp_path).total_usd == pytest.approx(0.002)  # samples are not spend
    async with open_ledger(tmp_path) as writer:  # recovery reads the nested samples too
        writer.append(header("resumed"))
    recovered = [r for r in iter_records(tmp_path) if isinstance(r, Attempt) and r.status == "interrupted"]
    assert [(r.call_id, r.usd, r.error_class) for r in recovered] == [("c1", 0.003, "crash")]
    assert load_state(tmp_path).total_usd == pytest.approx(0.005)
