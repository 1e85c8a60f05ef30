"""Transcripts end to end: a real sweep on the simulator writes them, the reader API gives them back
whole and joined with the ledger, and the file survives what a crash leaves (the kill -9 test is in
`test_transcripts_crash.py`)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.analysis.transcripts import (
    JobTranscript,
    iter_transcripts,
    read_job_transcript,
    transcript_file_info,
)
from runner.cli import main
from runner.errors import NoTranscripts, TranscriptError, TranscriptsCorrupt
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, Note, Snapshot, Synthesis
from runner.ledger.transcripts import Splice, restore, store_message, transcripts_path, walk
from runner.tasks.registry import get_task
from runner.tokens.encodings import get_encoding
from runner.types import Message
from tests.conftest import DATA, write_manifest

MANIFEST = """
[run]
name = "t"
seed = 3
ledger_dir = "@LEDGERS@"
confirm_above_usd = 100.0
{run_extra}

[providers.sim]
kind = "sim"
max_concurrency = 16

[models.raw]
provider = "sim"
model = "sim-reasoner-large"

[models.cot]
provider = "sim"
model = "sim-cot-small"

[models.hidden]
provider = "sim"
model = "sim-o4-mini"

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = {limit}
pool = 3

[methods.cot]
kind = "cot"

[methods.pdp]
kind = "pdp"
k = 3
m = 1
budget = 256

[sweep]
budgets = [64, 128, 256]
models = {models}
methods = {methods}

[simulator]
time_scale = 0.0
chunk_tokens = 4
"""


@given(
    content=st.text(max_size=300),
    cuts=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=3),
    foreign=st.text(min_size=1, max_size=20),
)
def test_a_stored_message_comes_back_exactly(content: str, cuts: list[tuple[int, int]], foreign: str) -> None:
    """Whatever stretches are cut out (overlapping, repeated, absent), restoring gives the message back."""
    texts = [content[a:b] for a, b in cuts] + [foreign]
    stretches = [(text, Splice(at=0, shared=f"s{i}")) for i, text in enumerate(texts)]
    stored = store_message(Message("user", content), stretches)
    assert sum(len(t) for t in texts) >= len(content) - len(stored.content)
    by_id = {f"s{i}": text for i, text in enumerate(texts)}
    assert restore(stored, lambda splice: by_id[splice.shared or ""]) == Message("user", content)


def sweep(
    tmp_path: Path,
    *extra: str,
    limit: int = 3,
    models: str = '["raw", "cot", "hidden"]',
    methods: str = '["cot", "pdp"]',
    run_extra: str = "",
) -> Path:
    body = MANIFEST.format(limit=limit, models=models, methods=methods, run_extra=run_extra)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_manifest(tmp_path, body)
    assert main(["run", str(path), "--yes", "--plain", "--no-report", *extra]) == 0
    return tmp_path / "ledgers" / "t"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sweep(tmp_path_factory.mktemp("transcripts"))


def ledger_of(run_dir: Path) -> list[object]:
    return list(iter_records(run_dir))


def test_every_completed_job_has_its_transcript(run_dir: Path) -> None:
    records = ledger_of(run_dir)
    done = {r.job_id: r for r in records if isinstance(r, JobDone)}
    transcripts = {t.job_id: t for t in iter_transcripts(run_dir)}
    assert set(transcripts) == set(done) and len(done) == 18
    for job_id, job in done.items():
        t = transcripts[job_id]
        assert (t.instance, t.model, t.dataset, t.method, t.problem_id, t.sample, t.fidelity) == (
            job.instance,
            job.model,
            job.dataset,
            job.method,
            job.problem_id,
            job.sample,
            job.fidelity,
        )
        assert t.complete and t.budgets == (64, 128, 256)
        assert read_job_transcript(run_dir, job_id) == t  # the single-job path and the bulk one agree


def test_cut_offsets_hold_exactly_the_budgets_tokens(run_dir: Path) -> None:
    encoding = get_encoding("o200k_base")
    checked = 0
    for t in iter_transcripts(run_dir):
        if t.fidelity == "hidden":
            continue
        assert t.traced == ("reasoning" if t.fidelity == "raw" else "content")
        text = t.reasoning if t.traced == "reasoning" else t.content
        for cut in t.cuts:
            chars = cut.reasoning_chars if t.traced == "reasoning" else cut.content_chars
            other = cut.content_chars if t.traced == "reasoning" else cut.reasoning_chars
            assert chars is not None and other is None
            assert len(encoding.encode_ordinary(text[:chars])) == cut.tokens <= cut.budget
            # the forced answer at this budget was sent exactly this prefix of the trace
            answer = next(a for a in t.answers if a.budget == cut.budget)
            assert f"<reasoning_so_far>\n{text[:chars]}\n</reasoning_so_far>" in answer.messages[0].content
            checked += 1
    assert checked == 12 * 3


def test_answers_gold_and_scores_match_the_ledger_and_dataset(run_dir: Path) -> None:
    snapshots = {(s.job_id, s.budget): s for s in ledger_of(run_dir) if isinstance(s, Snapshot)}
    gold = {p.id: p.gold for p in get_task("aime").load(DATA / "aime_2024.jsonl", 3)}
    for t in iter_transcripts(run_dir):
        assert t.gold == gold[t.problem_id]
        for answer in t.answers:
            snap = snapshots[(t.job_id, answer.budget)]
            assert (answer.answer, answer.score, answer.reused) == (snap.answer, snap.score, snap.reused)
            assert answer.gold == t.gold
            assert answer.text.strip(), "the forced answer's streamed text is kept"
        full = snapshots[(t.job_id, None)]
        assert (t.full_answer, t.full_score) == (full.answer, full.score)


def test_calls_and_attempts_come_from_the_ledger(run_dir: Path) -> None:
    attempts = [r for r in ledger_of(run_dir) if isinstance(r, Attempt)]
    for t in iter_transcripts(run_dir):
        mine = [a for a in attempts if a.job_id == t.job_id and a.instance == t.instance]
        assert {c.call_id for c in t.calls} == {a.call_id for a in mine}
        assert sum(len(c.attempts) for c in t.calls) == len(mine)
        assert t.usd == pytest.approx(sum(a.usd for a in mine))
        assert all(c.transcribed for c in t.calls)  # no call failed here: every one has its text
        answered = {a.call_id for a in t.answers if a.call_id}
        assert answered <= {c.call_id for c in t.calls if c.kind == "answer"}
        if t.fidelity != "hidden":
            assert [c.kind for c in t.calls].count("trace") == 1


def test_prompts_come_back_as_sent_with_the_preface_stored_once(run_dir: Path) -> None:
    prefaces = {s.model: s.text for s in ledger_of(run_dir) if isinstance(s, Synthesis)}
    pdp = [t for t in iter_transcripts(run_dir) if t.method == "pdp"]
    assert pdp and all(len(prefaces[t.model]) > 256 for t in pdp)
    for t in pdp:
        assert prefaces[t.model].strip() in t.messages[0].content
        if t.fidelity == "hidden":  # one call per budget, each sending the preface
            assert all(prefaces[t.model].strip() in a.messages[0].content for a in t.answers)
    raw = gzip.decompress(transcripts_path(run_dir).read_bytes())
    for text in prefaces.values():
        assert raw.count(msgspec.json.encode(text)[1:-1]) == 1  # once, in its `shared` record


def test_hidden_reasoning_has_one_answer_call_per_budget(run_dir: Path) -> None:
    hidden = [t for t in iter_transcripts(run_dir) if t.fidelity == "hidden"]
    assert hidden
    for t in hidden:
        assert t.traced is None and t.reasoning == "" and t.messages
        assert [c.budget for c in t.cuts] == [64, 128, 256]
        assert all(c.reasoning_chars is None and c.content_chars is None for c in t.cuts)
        assert len({a.call_id for a in t.answers}) == 3


def test_the_file_is_plain_multi_member_gzip(run_dir: Path) -> None:
    text = gzip.decompress(transcripts_path(run_dir).read_bytes()).decode()
    lines = text.splitlines()
    assert lines[0].startswith('{"type":"header"')
    kinds = {msgspec.json.decode(line)["type"] for line in lines}
    assert kinds == {"header", "shared", "job", "call", "grade"}
    info = transcript_file_info(run_dir)
    assert info.members > 1 and info.torn_bytes == 0 and info.raw_bytes == len(text.encode())


def test_unknown_job_is_none(run_dir: Path) -> None:
    assert read_job_transcript(run_dir, "no-such-job") is None


def test_no_transcripts_flag_and_manifest_field(tmp_path: Path) -> None:
    by_flag = sweep(tmp_path / "flag", "--no-transcripts", limit=1, models='["cot"]', methods='["cot"]')
    by_field = sweep(tmp_path / "field", limit=1, models='["cot"]', methods='["cot"]', run_extra="transcripts = false")
    for run_dir in (by_flag, by_field):
        assert not transcripts_path(run_dir).exists()
        with pytest.raises(NoTranscripts, match="--no-transcripts"):
            read_job_transcript(run_dir, "x")
        with pytest.raises(TranscriptError):
            list(iter_transcripts(run_dir))


def test_no_key_in_transcripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-" + "7f3a" * 8
    monkeypatch.setenv("TRANSCRIPT_TEST_KEY", secret)
    keyed = 'kind = "openai"\nbase_url = "sim://"\napi_key_env = "TRANSCRIPT_TEST_KEY"\nmax_concurrency'
    body = MANIFEST.format(limit=1, models='["raw"]', methods='["cot"]', run_extra="")
    body = body.replace('kind = "sim"\nmax_concurrency', keyed)
    path = write_manifest(tmp_path, body)
    assert main(["run", str(path), "--yes", "--plain", "--no-report"]) == 0
    run_dir = tmp_path / "ledgers" / "t"
    raw = gzip.decompress(transcripts_path(run_dir).read_bytes())
    assert list(iter_transcripts(run_dir)) and secret.encode() not in raw and b"7f3a7f3a" not in raw


def test_torn_tail_is_skipped_by_readers_and_cut_off_by_the_next_run(tmp_path: Path) -> None:
    sweep(tmp_path, limit=1, models='["raw"]', methods='["cot"]')  # one process's members, closed
    run_dir = sweep(tmp_path, limit=2, models='["raw"]', methods='["cot"]')  # and the next one's after them
    path = transcripts_path(run_dir)
    whole = list(iter_transcripts(run_dir))
    members = walk(path).members
    # a crash in the middle of the last member's write: the file ends inside it
    with open(path, "rb+") as handle:
        handle.truncate(members[-1].offset + members[-1].length // 2)
    info = transcript_file_info(run_dir)
    assert info.torn_bytes == members[-1].length // 2 and info.members == len(members) - 1
    survivors = list(iter_transcripts(run_dir))  # no error: what is whole is read
    by_id = {t.job_id: t for t in whole}
    assert survivors and all(t.reasoning == by_id[t.job_id].reasoning for t in survivors)
    # the next run on the folder cuts the torn member off, notes it, and goes on appending
    os.utime(path)
    sweep(tmp_path, limit=3, models='["raw"]', methods='["cot"]')
    notes = [r for r in iter_records(run_dir) if isinstance(r, Note) and r.kind == "torn_transcripts"]
    assert len(notes) == 1 and str(members[-1].length // 2) in notes[0].message
    assert transcript_file_info(run_dir).torn_bytes == 0
    gzip.decompress(path.read_bytes())  # whole again
    assert len(list(iter_transcripts(run_dir))) >= len(survivors) + 1


def test_damaged_member_is_an_error_naming_the_file_and_byte(tmp_path: Path) -> None:
    run_dir = sweep(tmp_path, limit=2, models='["raw"]', methods='["cot"]')
    path = transcripts_path(run_dir)
    member = walk(path).members[0]  # the header's member: a run this small may write only one
    data = bytearray(path.read_bytes())
    data[member.offset + member.length // 2] ^= 0xFF  # a flipped byte inside the compressed body
    path.write_bytes(bytes(data))
    with pytest.raises(TranscriptsCorrupt, match=rf"transcripts.jsonl.gz: member at byte {member.offset}"):
        list(iter_transcripts(run_dir))
    data[member.offset : member.offset + 2] = b"XX"  # and a header that is not ours
    path.write_bytes(bytes(data))
    with pytest.raises(TranscriptsCorrupt, match=rf"byte {member.offset}: not a transcripts member"):
        transcript_file_info(run_dir)
    # a run refuses to append to it, before any call
    body = MANIFEST.format(limit=2, models='["raw"]', methods='["cot"]', run_extra="")
    assert main(["run", str(write_manifest(tmp_path, body)), "--yes", "--plain", "--no-report"]) == 1


def test_a_run_still_writing_is_read_as_it_grows(tmp_path: Path) -> None:
    run_dir = sweep(tmp_path, limit=1, models='["raw"]', methods='["cot"]')
    first = list(iter_transcripts(run_dir))
    job = first[0].job_id
    assert read_job_transcript(run_dir, job) == first[0]  # indexes the file
    sweep(tmp_path, limit=3, models='["raw"]', methods='["cot"]')  # the run grows (a resume adds jobs)
    later = {t.job_id: t for t in iter_transcripts(run_dir)}
    assert len(later) == 3
    for job_id, t in later.items():
        assert read_job_transcript(run_dir, job_id) == t  # the index followed the file
    assert isinstance(later[job], JobTranscript)
