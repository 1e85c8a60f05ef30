"""`anytime estimate`: exact prompt counts, the low / expected / high range, history, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main as cli
from runner.config.manifest import load_manifest
from runner.config.plan import expand_jobs, get_task
from runner.errors import LedgerError
from runner.ledger.estimate import confirm_needed, count_prompts, estimate_manifest
from runner.ledger.job_cost import SEAM
from runner.ledger.reader import load_state
from runner.tasks.methods import answer_messages, get_method
from runner.tokens.count import count_chat_tokens
from runner.tokens.encodings import resolve_encoding

DATA = Path(__file__).resolve().parent.parent / "data"


def write_manifest(tmp_path: Path, body: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(body.replace("@DATA@", str(DATA)).replace("@LEDGERS@", str(tmp_path / "ledgers")))
    return path


BODY = """
[run]
name = "{name}"
seed = {seed}
ledger_dir = "@LEDGERS@"
confirm_above_usd = 0.01

[providers.sim]
kind = "sim"
rpm = 600
tpm = 100000
max_concurrency = 16

[models.strong]
provider = "sim"
model = "sim-reasoner-large"
temperature = 0.7

[models.weak]
provider = "sim"
model = "{weak}"
temperature = 0.7

[datasets.aime]
kind = "aime"
path = "@DATA@/aime_2024.jsonl"
limit = {limit}

[methods.cot]
kind = "cot"
{methods}

[sweep]
budgets = [128, 256, 512, 1024]
methods = {selected}

[simulator]
time_scale = 0.01
chunk_tokens = 16
"""


def manifest(
    tmp_path: Path,
    *,
    name: str = "e",
    seed: int = 3,
    limit: int = 4,
    weak: str = "sim-cot-small",
    methods: str = "",
    selected: str = '["cot"]',
) -> Path:
    body = BODY.format(name=name, seed=seed, limit=limit, weak=weak, methods=methods, selected=selected)
    return write_manifest(tmp_path, body, f"{name}.toml")


def test_calls_and_range(tmp_path: Path) -> None:
    est = estimate_manifest(load_manifest(manifest(tmp_path)), previous=[])
    assert [(r.model, r.fidelity, r.jobs) for r in est.rows] == [("strong", "raw", 4), ("weak", "content", 4)]
    for row in est.rows:
        assert row.calls.high == 4 * (1 + 4)  # one trace and one answer per budget
        assert row.calls.low == 4 * 2
        for span in (row.calls, row.input_tokens, row.output_tokens, row.usd):
            assert 0 < span.low <= span.expected <= span.high
        assert row.expected_from == "prior"
    strong, weak = est.rows
    # high: the trace reaches its cap (+ room for the visible answer on a reasoning model), answers theirs
    assert strong.output_tokens.high == 4 * (1024 + 512 + 4 * 256)
    assert weak.output_tokens.high == 4 * (1024 + 4 * 256)
    assert est.usd_high == pytest.approx(sum(r.usd.high for r in est.rows))
    assert est.calls_high == 40


def test_input_tokens_are_the_rendered_prompts_counted_exactly(tmp_path: Path) -> None:
    loaded = load_manifest(manifest(tmp_path))
    groups = count_prompts(loaded)
    encoding = resolve_encoding(None, "sim-reasoner-large").encoding
    task, method = get_task("aime"), get_method("cot")
    trace = answer = 0
    for job in expand_jobs(loaded):
        if job.model == "strong":
            rendered = task.render(job.problem, job.seed)
            trace += count_chat_tokens(encoding, method.trace_messages(task, rendered, None))
            answer += count_chat_tokens(encoding, answer_messages(task, rendered, ""))
    group = groups[("strong", "aime", "cot")]
    assert (group.trace_input, group.answer_input) == (trace, answer)
    row = estimate_manifest(loaded, previous=[]).rows[0]
    # each answer's cut may gain a token or two where it meets the prompt around it (SEAM)
    assert row.input_tokens.high == trace + 4 * answer + 4 * sum((128, 256, 512, 1024)) + 4 * 4 * SEAM


def test_hidden_reasoning_pays_one_call_per_budget(tmp_path: Path) -> None:
    est = estimate_manifest(load_manifest(manifest(tmp_path, weak="sim-o4-mini")), previous=[])
    hidden = est.rows[1]
    assert hidden.fidelity == "hidden"
    assert hidden.calls.high == hidden.calls.low == 4 * 4
    assert hidden.output_tokens.high == 4 * sum((128, 256, 512, 1024))


def test_pdp_adds_synthesis_once_per_group(tmp_path: Path) -> None:
    methods = '[methods.pdp]\nkind = "pdp"\nk = 2\nm = 2\n'
    est = estimate_manifest(load_manifest(manifest(tmp_path, methods=methods, selected='["cot", "pdp"]')), previous=[])
    cot, pdp = (r for r in est.rows if r.model == "strong")
    assert cot.synthesis_calls == 0
    assert pdp.synthesis_calls == 2 * 8 * 2  # a trace and an answer for each of pool (8) x k (2)
    assert pdp.calls.high == cot.calls.high + pdp.synthesis_calls
    for span in (pdp.calls, pdp.input_tokens, pdp.output_tokens, pdp.usd):
        assert 0 < span.low <= span.expected <= span.high
    # the preface (pairs of pool traces) makes every PDP trace prompt longer than CoT's
    assert pdp.input_tokens.high > cot.input_tokens.high + 4 * 2 * 512
    assert any("synthesis" in note for note in est.notes)


def test_least_wall_time_is_what_full_buckets_leave(tmp_path: Path) -> None:
    """The limits are leaky buckets that start full: a run using less than a minute's worth waits for
    nothing, so the least time is the excess over one minute's worth, at the tighter limit and at the
    least use a run can make (the low case)."""
    est = estimate_manifest(load_manifest(manifest(tmp_path)), previous=[])
    (lane,) = est.lanes
    assert (lane.rpm, lane.tpm) == (600, 100000)
    assert lane.min_wall_s == 0.0
    tight = manifest(tmp_path, name="tight")
    tight.write_text(tight.read_text().replace("tpm = 100000", "tpm = 2000"))
    est = estimate_manifest(load_manifest(tight), previous=[])
    (lane,) = est.lanes
    calls = sum(r.calls.low for r in est.rows)
    tokens = sum(r.input_tokens.low + r.output_tokens.low for r in est.rows)
    assert tokens > 2000 and lane.tokens > tokens  # the expected use is shown; the bound is at the low use
    assert lane.min_wall_s == pytest.approx(max(60 * (calls - 600) / 600, 60 * (tokens - 2000) / 2000))


def test_unknown_price_stops_with_the_field_to_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, weak="mystery-model")
    assert cli(["estimate", str(path)]) == 2
    assert "models.weak.price" in capsys.readouterr().err


def test_confirm_threshold(tmp_path: Path) -> None:
    loaded = load_manifest(manifest(tmp_path))
    est = estimate_manifest(loaded, previous=[])
    assert est.usd_high > 0.01 and confirm_needed(est, loaded.manifest)
    cheap = load_manifest(
        write_manifest(
            tmp_path,
            manifest(tmp_path).read_text().replace("confirm_above_usd = 0.01", "confirm_above_usd = 1000.0"),
            "cheap.toml",
        )
    )
    assert not confirm_needed(est, cheap.manifest)


def test_json_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["estimate", str(manifest(tmp_path)), "--json", "--no-history"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"rows", "lanes", "usd_low", "usd_expected", "usd_high", "min_wall_s", "notes"}
    assert data["rows"][0]["usd"]["high"] > data["rows"][0]["usd"]["low"]
    assert cli(["estimate", str(manifest(tmp_path))]) == 0
    assert "Estimate for e.toml" in capsys.readouterr().out


def test_history_makes_expected_close_and_high_holds(tmp_path: Path) -> None:
    """Run one sweep, estimate a different one (other seed, more problems) from its ledger, run it."""
    first = manifest(tmp_path, name="first", seed=3, limit=3)
    second = manifest(tmp_path, name="second", seed=11, limit=6)
    for path in (first, second):  # lanes pace within the minute: at 100k tokens/min the runs would crawl
        path.write_text(path.read_text().replace("tpm = 100000", "tpm = 4000000"))
    assert cli(["run", str(first), "--yes", "--plain", "--no-report"]) == 0
    loaded = load_manifest(second)
    est = estimate_manifest(loaded, previous=[tmp_path / "ledgers" / "first"])
    assert all(r.expected_from == "history (3 jobs)" for r in est.rows)
    assert cli(["run", str(second), "--yes", "--plain", "--no-report"]) == 0
    actual = load_state(tmp_path / "ledgers" / "second").total_usd
    assert est.usd_high >= actual
    assert est.usd_expected == pytest.approx(actual, rel=0.10)
    # by default the manifest's ledger folder is the history
    assert estimate_manifest(loaded, remaining=False).rows[0].expected_from.startswith("history")
    # a rerun would skip every finished job: nothing is left to pay for
    after = estimate_manifest(loaded)
    assert (after.jobs_done, after.rows, after.usd_high) == (12, [], 0.0)
    assert after.usd_spent == pytest.approx(actual)


def test_synthesis_already_built_is_left_out(tmp_path: Path) -> None:
    from runner.config.calls import synthesis_key

    methods = '[methods.pdp]\nkind = "pdp"\n'
    loaded = load_manifest(manifest(tmp_path, methods=methods, selected='["pdp"]'))
    key = synthesis_key(loaded, "strong", "aime", "pdp")
    groups = count_prompts(loaded, built={key})
    assert groups[("strong", "aime", "pdp")].synthesis == [] and groups[("weak", "aime", "pdp")].synthesis


def test_an_unreadable_ledger_in_the_folder_is_skipped_and_named(tmp_path: Path) -> None:
    """The history is the newest ledgers in the run's ledger folder: another run's damage (a line
    broken in the middle, a foreign file) must not stop this estimate, nor the run that makes it."""
    broken = tmp_path / "ledgers" / "broken"
    broken.mkdir(parents=True)
    (broken / "ledger.jsonl").write_text('{"type": "attempt", "oops"\n{"type": "note"}\n')
    est = estimate_manifest(load_manifest(manifest(tmp_path)))
    assert any("skipped" in note and "broken" in note for note in est.notes)
    assert all(r.expected_from == "prior" for r in est.rows)
    with pytest.raises(LedgerError):  # a ledger the user names is read, or the estimate says why not
        estimate_manifest(load_manifest(manifest(tmp_path)), previous=[broken])
