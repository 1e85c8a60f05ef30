"""`anytime view` end to end: real simulator runs, the viewer as a subprocess on loopback, its JSON
endpoints checked against the ledgers, and the pages in a headless Chromium (selenium).

Runs in one ledger folder: ``alpha`` (two models; some 5xx answers, so retries and failed
attempts), ``beta`` (the same design, another seed: the comparison), ``plain`` (alpha without its
transcripts file), ``torn`` (alpha's ledger with a broken line in the middle), and, for the live
test, ``live``, started while the page is open. Screenshots go to a temp folder
(``ANYTIME_VIEW_SHOTS`` to choose it); its path is printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.analysis.run_state import read_run
from runner.ledger.reader import iter_records
from runner.ledger.records import Attempt, JobDone, Snapshot
from runner.ui.view.models import ModelCache
from tests.conftest import REPO
from tests.view_support import (
    BUDGETS,
    Viewer,
    browser_missing,
    open_chromium,
    open_viewer,
    run_finished,
    write_run_manifest,
)

Scores = dict[tuple[str, str], dict[int | None, float]]  # (model, problem) -> budget -> score


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("view")
    alpha = run_finished(folder, "alpha", error_5xx=0.08)
    run_finished(folder, "beta", seed=8)
    plain = folder / "ledgers" / "plain"
    shutil.copytree(alpha, plain)
    (plain / "transcripts.jsonl.gz").unlink()
    torn = folder / "ledgers" / "torn"
    torn.mkdir()
    lines = (alpha / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    (torn / "ledger.jsonl").write_bytes(b"".join([*lines[:4], b'{"type":"attempt","call_id":\n', *lines[4:]]))
    return folder / "ledgers"


@pytest.fixture(scope="module")
def viewer(ledgers: Path) -> Iterator[Viewer]:
    with open_viewer(["--ledgers", str(ledgers)]) as running:
        yield running
    assert "Traceback" not in running.stderr


def scores_of(run_dir: Path) -> Scores:
    """Each trace's score per budget, straight from the ledger (the counted executions)."""
    records = list(iter_records(run_dir))
    done = {r.job_id: r.instance for r in records if isinstance(r, JobDone)}
    scores: Scores = defaultdict(dict)
    for r in records:
        if isinstance(r, Snapshot) and done.get(r.job_id) == r.instance:
            scores[(r.model, r.problem_id)][r.budget] = r.score
    return scores


def stronger_not_weaker(scores: Scores, budget: int) -> set[str]:
    problems = {p for _, p in scores}
    return {p for p in problems if scores[("reasoner", p)][budget] == 1.0 and scores[("cot", p)][budget] < 1.0}


# ---- the JSON endpoints over loopback ------------------------------------------------------------


def test_the_runs_list_shows_state_spend_progress_and_the_anytime_index(viewer: Viewer, ledgers: Path) -> None:
    status, body = viewer.get("/api/runs")
    assert status == 200
    runs = {r["id"]: r for r in body["runs"]}
    assert set(runs) == {"alpha", "beta", "plain", "torn"}
    alpha = runs["alpha"]
    report = json.loads((ledgers / "alpha" / "report.json").read_text())["runs"][0]
    assert alpha["status"]["state"] == "finished"
    assert alpha["jobs_done"] == alpha["jobs_planned"] == 24
    assert alpha["usd_total"] == pytest.approx(report["usd_total"])
    index = {c["model"]: c["anytime_index"]["value"] for c in alpha["cells"]}
    assert index == {c["model"]: pytest.approx(c["summary"]["anytime_index"]["value"]) for c in report["cells"]}
    assert "ledger.jsonl:5: not a ledger record" in runs["torn"]["error"]


def test_the_curves_have_a_band_and_a_point_at_every_budget(viewer: Viewer, ledgers: Path) -> None:
    _, run = viewer.get("/api/runs/alpha")
    report = {c["model"]: c for c in json.loads((ledgers / "alpha" / "report.json").read_text())["runs"][0]["cells"]}
    assert {c["model"] for c in run["curves"]} == {"reasoner", "cot"}
    for curve in run["curves"]:
        points, cell = curve["points"], report[curve["model"]]
        assert [p["budget"] for p in points] == BUDGETS
        assert [p["quality"]["value"] for p in points] == pytest.approx(cell["summary"]["quality"])
        assert [p["usd"] for p in points] == pytest.approx(cell["usd_at_budget"])
        for p in points:
            for band in (p["quality"], p["running_best"]):
                assert band["lo"] <= band["value"] <= band["hi"]
            assert p["running_best"]["value"] >= p["quality"]["value"]
        best = [p["running_best"]["value"] for p in points]
        dollars = [p["usd"] for p in points]
        assert best == sorted(best) and dollars == sorted(dollars) and dollars[0] > 0


def test_the_filter_finds_what_the_stronger_model_solves_and_the_weaker_does_not(viewer: Viewer, ledgers: Path) -> None:
    expected = stronger_not_weaker(scores_of(ledgers / "alpha"), 512)
    assert expected, "the seeded runs must have such problems"
    query = "model=reasoner&budget=512&outcome=right&versus_model=cot&versus=wrong"
    _, body = viewer.get(f"/api/runs/alpha/traces?{query}")
    assert {r["problem_id"] for r in body["rows"]} == expected
    assert body["matched"] == len(expected) and all(r["model"] == "reasoner" for r in body["rows"])


def test_the_filters_for_flips_and_failed_calls_and_the_sort_by_cost(viewer: Viewer, ledgers: Path) -> None:
    scores = scores_of(ledgers / "alpha")
    gained = {key for key, s in scores.items() if s[256] < 1.0 and s[1024] == 1.0}
    _, body = viewer.get("/api/runs/alpha/traces?flip=gained&flip_from=256&flip_to=1024")
    assert {(r["model"], r["problem_id"]) for r in body["rows"]} == gained

    attempts = [r for r in iter_records(ledgers / "alpha") if isinstance(r, Attempt) and r.kind != "synthesis"]
    failed = {a.job_id for a in attempts if a.status == "error"}
    _, body = viewer.get("/api/runs/alpha/traces?failed=1")
    assert failed and {r["job_id"] for r in body["rows"]} == failed
    assert all(r["retries"] >= 1 for r in body["rows"])

    _, body = viewer.get("/api/runs/alpha/traces?sort=usd&descending=1")
    costs = [r["usd"] for r in body["rows"]]
    assert len(costs) == 24 and costs == sorted(costs, reverse=True)
    _, body = viewer.get("/api/runs/alpha/traces?sort=tokens")
    tokens = [r["input_tokens"] + r["output_tokens"] for r in body["rows"]]
    assert tokens == sorted(tokens)


def test_one_trace_has_its_prompt_cuts_answers_grades_and_calls(viewer: Viewer, ledgers: Path) -> None:
    _, body = viewer.get("/api/runs/alpha/traces?model=reasoner&budget=512&outcome=right&versus_model=cot&versus=wrong")
    job_id = body["rows"][0]["job_id"]
    _, job = viewer.get(f"/api/runs/alpha/jobs/{job_id}")
    t = job["transcript"]
    assert job["transcript_missing"] is None and t["complete"]
    assert job["problem"]["statement"] in t["messages"][-1]["content"]
    offsets = [c["offset"] for c in t["cuts"]]
    assert [c["budget"] for c in t["cuts"]] == BUDGETS and offsets == sorted(offsets) and offsets[0] > 0
    assert all(c["field"] == "reasoning" for c in t["cuts"])  # sim-reasoner-large streams its thinking
    at_512 = next(a for a in t["answers"] if a["budget"] == 512)
    assert at_512["score"] == 1.0 and at_512["answer"] == at_512["gold"] == job["problem"]["gold"]
    assert at_512["answer"] in at_512["text"]
    ledger_usd = sum(a.usd for a in iter_records(ledgers / "alpha") if isinstance(a, Attempt) and a.job_id == job_id)
    assert sum(a["usd"] for c in job["calls"] for a in c["attempts"]) == pytest.approx(ledger_usd)
    assert {c["kind"] for c in job["calls"]} == {"trace", "answer"}


def test_two_runs_are_compared_paired_by_problem(viewer: Viewer, ledgers: Path) -> None:
    a, b = scores_of(ledgers / "alpha"), scores_of(ledgers / "beta")
    _, body = viewer.get("/api/compare?a=alpha&b=beta")
    pairs = {tuple(p["a"]): p for p in body["pairs"]}
    assert set(pairs) == {("reasoner", "aime24", "cot"), ("cot", "aime24", "cot")}
    pair = pairs[("reasoner", "aime24", "cot")]
    problems = sorted({p for m, p in a if m == "reasoner"})
    assert pair["problems"] == len(problems) == 12
    for gap in pair["gaps"]:
        q_a = sum(a[("reasoner", p)][gap["budget"]] for p in problems) / len(problems)
        q_b = sum(b[("reasoner", p)][gap["budget"]] for p in problems) / len(problems)
        assert gap["difference"]["value"] == pytest.approx(q_b - q_a)  # B − A, as `report --compare`
        assert gap["difference"]["lo"] <= gap["difference"]["value"] <= gap["difference"]["hi"]
    changed = {p for p in problems if any(a[("reasoner", p)][x] != b[("reasoner", p)][x] for x in BUDGETS)}
    assert {c["problem_id"] for c in pair["changed"]} == changed


def test_the_page_and_every_asset_it_loads_come_from_the_package(viewer: Viewer) -> None:
    status, html = viewer.get("/")
    assert status == 200 and "<title>anytime view</title>" in html
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    shipped = {p.name for p in (REPO / "runner" / "ui" / "view" / "static").iterdir()}
    assert set(assets) == shipped - {"index.html"}
    for name in assets:
        assert viewer.get(f"/static/{name}")[0] == 200
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', html))  # nothing from elsewhere
    assert viewer.get("/static/secret.txt")[0] == 404


def test_bad_requests_get_one_clear_message_never_a_stack_trace(viewer: Viewer) -> None:
    status, body = viewer.get("/api/runs/nope")
    assert status == 404 and body["error"].startswith("no run 'nope' in ") and "known: alpha, beta" in body["error"]
    status, body = viewer.get("/api/runs/torn")
    assert status == 422 and "ledger.jsonl:5: not a ledger record" in body["error"]
    status, body = viewer.get("/api/runs/alpha/traces?budget=many")
    assert status == 400 and "$.budget" in body["error"]
    status, body = viewer.get("/api/runs/alpha/traces?versus=wrong&budget=512")
    assert status == 400 and "`versus` needs `versus_model` or `versus_method`" in body["error"]
    status, body = viewer.get("/api/runs/alpha/jobs/0000")
    assert status == 404 and "no job '0000'" in body["error"]
    status, body = viewer.get("/api/compare?a=alpha&b=beta&a_cell=gpt/x/y")
    assert status == 400 and "no cell 'gpt/x/y'" in body["error"]


def test_a_run_without_transcripts_shows_what_the_ledger_knows_and_says_so(viewer: Viewer) -> None:
    _, run = viewer.get("/api/runs/plain")
    assert run["transcripts"]["available"] is False and "no transcripts.jsonl.gz" in run["transcripts"]["message"]
    job_id = viewer.get("/api/runs/plain/traces")[1]["rows"][0]["job_id"]
    status, job = viewer.get(f"/api/runs/plain/jobs/{job_id}")
    assert status == 200 and job["transcript"] is None
    assert "No transcripts" in job["transcript_missing"] and job["calls"] and job["row"]["cuts"]
    assert job["problem"]["gold"]  # from the dataset file the run header names


def test_the_command_refuses_a_folder_that_is_not_a_run_and_a_port_in_use(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "view", str(tmp_path / "nope"), "--no-browser"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run folder"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "runner.cli",
                "view",
                "--ledgers",
                str(tmp_path),
                "--port",
                str(port),
                "--no-browser",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_terminal_names_each_bad_run_and_request_once_and_ctrl_c_stops_cleanly(ledgers: Path) -> None:
    missing = ledgers / "missing"
    with open_viewer([str(ledgers / "alpha"), str(ledgers / "torn"), str(missing)]) as running:
        for _ in range(2):  # a page polls: the terminal still says each thing once
            runs = running.get("/api/runs")[1]
            assert running.get("/api/runs/beta")[0] == 404
        assert runs["problems"] == [f"{missing}: no such run folder"]
        assert [r.get("error", "")[:27] for r in runs["runs"]] == [
            "",
            "cannot read this run's ledg",
            f"{missing}: no"[:27],
        ]
        assert running.stop() == 0
    said = running.stderr.splitlines()
    assert f"warning: {missing}: no such run folder" in said
    assert sum("viewer: /api/runs/beta: no run 'beta' among the runs given" in line for line in said) == 1
    assert sum("torn/ledger.jsonl:5: not a ledger record" in line for line in said) == 1
    assert "viewer stopped" in said and "Traceback" not in running.stderr


def test_a_run_without_an_end_record_is_in_progress_while_it_writes_then_interrupted(ledgers: Path) -> None:
    crashed = ledgers.parent / "crashed"
    crashed.mkdir()
    lines = (ledgers / "alpha" / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    assert b'"kind":"run_end"' in lines[-1]
    (crashed / "ledger.jsonl").write_bytes(b"".join(lines[:-1]) + b'{"type":"attempt","call')  # and a torn tail
    read = read_run(crashed)
    written = read.modified_at
    running = read.status(now=written + 5)
    assert running.state == "in_progress" and running.torn_tail_bytes == len(b'{"type":"attempt","call')
    gone = read.status(now=written + 3600)
    assert gone.state == "interrupted" and "no end record and no write for 1.0 h" in gone.detail
    assert read_run(ledgers / "alpha").status(now=written + 3600).state == "finished"


def test_a_growing_ledger_is_read_again_but_not_more_often_than_its_build_takes(ledgers: Path) -> None:
    growing = ledgers.parent / "growing"
    shutil.copytree(ledgers / "alpha", growing)
    now = [1000.0]
    cache = ModelCache(clock=lambda: now[0])
    first = cache.get(growing)
    assert cache.get(growing) is first  # unchanged: never rebuilt
    with (growing / "ledger.jsonl").open("ab") as ledger:
        ledger.write(b'{"type":"note","at":0.0,"kind":"test","message":"grown"}\n')
    assert cache.get(growing) is first  # changed, but the model is younger than MIN_AGE_S
    now[0] += ModelCache.MIN_AGE_S
    second = cache.get(growing)
    assert second is not first and second.read.notes[-1].message == "grown"


# ---- the pages in a real browser -------------------------------------------------------------------

MISSING = browser_missing()
needs_browser = pytest.mark.skipif(MISSING is not None, reason=f"no browser test: {MISSING}")


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("ANYTIME_VIEW_SHOTS") or tempfile.mkdtemp(prefix="anytime-view-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if MISSING is not None:
        pytest.skip(f"no browser test: {MISSING}")
    with open_chromium() as driver:
        driver.set_page_load_timeout(30)
        yield driver


# the page for the current address is drawn (app.js marks it when its data is in)
DRAWN = "document.getElementById('view').dataset.loaded === location.hash"


def page(browser: Any, viewer: Viewer, fragment: str) -> None:
    """Open a page and wait until it is drawn (a change of # alone does not reload the document)."""
    browser.get(viewer.url + "#" + fragment)
    wait_until(browser, f"return {DRAWN}")


def wait_for(browser: Any, css: str, timeout: float = 15) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def wait_until(browser: Any, script: str, timeout: float = 20) -> Any:
    """Wait until ``script`` returns something true; on a timeout, say what the page shows instead."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(script))
    except TimeoutException:
        shown = browser.execute_script("return document.getElementById('view').innerText.slice(0, 600)")
        raise AssertionError(f"waited {timeout} s for `{script}`; the page shows:\n{shown}") from None


def shoot(browser: Any, folder: Path, name: str) -> None:
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(max(height + 40, 700), 3000))
    browser.save_screenshot(str(folder / f"{name}.png"))
    browser.set_window_size(1400, 1000)


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


@needs_browser
def test_browser_the_run_page_draws_curves_with_bands_and_points(browser: Any, viewer: Viewer, shots: Path) -> None:
    page(browser, viewer, "/")
    wait_for(browser, "#runs-table tr[data-run='alpha']")
    assert "finished" in css(browser, "#runs-table tr[data-run='alpha'] .badge")[0].text
    assert "not a ledger record" in css(browser, "#runs-table tr[data-run='torn']")[0].text
    shoot(browser, shots, "runs")
    page(browser, viewer, "/run/alpha")
    wait_for(browser, ".chart-quality svg .series")
    for cell in ("reasoner/aime24/cot", "cot/aime24/cot"):
        series = f".chart-quality .series[data-cell='{cell}']"
        assert len(css(browser, f"{series} path.band")) == 1
        assert [p.get_attribute("data-budget") for p in css(browser, f"{series} circle.point")] == [
            str(b) for b in BUDGETS
        ]
        assert len(css(browser, f".chart-best .series[data-cell='{cell}'] circle.point")) == len(BUDGETS)
        assert len(css(browser, f".chart-best .series[data-cell='{cell}'] path.band")) == 1
        assert len(css(browser, f".chart-dollars .series[data-cell='{cell}'] circle.point")) == len(BUDGETS)
    assert css(browser, "#status")[0].text == "finished"
    shoot(browser, shots, "run")


@needs_browser
def test_browser_the_filters_find_the_problems_the_stronger_model_solves_and_open_one(
    browser: Any, viewer: Viewer, ledgers: Path, shots: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    expected = stronger_not_weaker(scores_of(ledgers / "alpha"), 512)
    page(browser, viewer, "/run/alpha")
    wait_for(browser, "#to-problems").click()
    wait_for(browser, "#filters")
    # as a user does it: each change applies the filter (the page re-renders, so look the form up again)
    for name, value in (
        ("model", "reasoner"),
        ("budget", "512"),
        ("outcome", "right"),
        ("versus_model", "cot"),
        ("versus", "wrong"),
    ):
        Select(wait_for(browser, f"#f-{name}")).select_by_value(value)
        wait_until(browser, f"return location.hash.includes('{name}={value}') && {DRAWN}")
    assert css(browser, "#matched")[0].text == str(len(expected))
    rows = css(browser, "#problems-table tbody tr .job-link")
    assert {r.text for r in rows} == expected
    shoot(browser, shots, "problems-filtered")
    css(browser, "th[data-sort='usd']")[0].click()
    wait_until(browser, f"return location.hash.includes('sort=usd') && {DRAWN}")
    rows = css(browser, "#problems-table tbody tr .job-link")
    rows[0].click()
    wait_for(browser, "#trace-reasoning .cut-marker")
    markers = css(browser, "#trace-reasoning .cut-marker")
    assert [m.get_attribute("data-budget") for m in markers] == [str(b) for b in BUDGETS]
    assert "right" in css(browser, "#trace-reasoning .cut-marker[data-budget='512']")[0].get_attribute("class")
    assert css(browser, "#gold")[0].text.strip() != "—"
    assert len(css(browser, "#answers-table tbody tr")) == len(BUDGETS) + 1  # and the full trace
    assert len(css(browser, "#calls-table tbody tr")) >= len(BUDGETS) + 1
    shoot(browser, shots, "trace")


@needs_browser
def test_browser_the_comparison_page(browser: Any, viewer: Viewer, shots: Path) -> None:
    page(browser, viewer, "/compare?a=alpha&b=beta")
    wait_for(browser, "section.pair .chart-diff")
    sections = css(browser, "section.pair")
    assert len(sections) == 2
    assert len(css(browser, "section.pair table.gaps tbody tr")) == 2 * len(BUDGETS)
    assert len(css(browser, "section.pair .chart-diff circle.point")) == 2 * len(BUDGETS)
    assert css(browser, "section.pair .errorbar")
    assert css(browser, "#paired-0")[0].text == "12"
    shoot(browser, shots, "compare")


@needs_browser
def test_browser_error_pages_say_what_is_wrong(browser: Any, viewer: Viewer, shots: Path) -> None:
    page(browser, viewer, "/run/nope")
    assert "no run 'nope'" in wait_for(browser, ".error-message").text
    page(browser, viewer, "/run/torn")
    assert "ledger.jsonl:5: not a ledger record" in wait_for(browser, ".error-message").text
    shoot(browser, shots, "error-torn")
    page(browser, viewer, "/run/plain")
    assert "no transcripts.jsonl.gz" in wait_for(browser, "#transcripts-state").text
    wait_for(browser, "#to-problems").click()
    wait_for(browser, "#problems-table .job-link").click()
    assert "No transcripts" in wait_for(browser, "#transcript-missing").text
    assert css(browser, "#answers-table tbody tr")
    shoot(browser, shots, "trace-without-transcripts")


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    for _ in range(600):
        if path.exists() or process.poll() is not None:
            break
        time.sleep(0.05)
    assert path.exists(), process.communicate()[1]


@needs_browser
def test_browser_a_run_in_progress_refreshes_live_until_it_is_stopped(browser: Any, ledgers: Path, shots: Path) -> None:
    # its own ledger folder: `anytime run` calibrates its estimate from the runs beside it, and
    # refuses to start next to the torn ledger of the other tests. At real speed (about 1 s a job, two
    # at a time) the run would take 12 s: it is stopped after its first jobs, so the page sees it
    # running, growing, then stopped
    folder = ledgers.parent / "live"
    (folder / "ledgers").mkdir(parents=True)
    manifest = write_run_manifest(
        folder, "live", time_scale=1.0, concurrency=2, limit=24, budgets=[128, 256], models='models = ["reasoner"]'
    )
    with open_viewer(["--ledgers", str(folder / "ledgers")]) as viewer:
        running = subprocess.Popen(
            [sys.executable, "-m", "runner.cli", "run", str(manifest), "--yes", "--plain"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_file(folder / "ledgers" / "live" / "ledger.jsonl", running)
            page(browser, viewer, "/run/live")
            wait_until(browser, "return document.getElementById('status')?.textContent === 'in progress'")
            assert viewer.get("/api/runs")[1]["runs"][0]["status"]["state"] == "in_progress"
            browser.execute_script("window.sameDocument = true")
            done = "Number(document.querySelector('#jobs-done [data-done]').dataset.done)"
            first = browser.execute_script(f"return {done}")
            wait_until(browser, f"return {done} > {first}")
            shoot(browser, shots, "live")
            running.send_signal(signal.SIGINT)  # Ctrl-C: the run stops and notes why
            wait_until(browser, "return document.getElementById('status')?.textContent === 'interrupted'", 60)
            assert browser.execute_script("return window.sameDocument") is True  # refreshed in place, no reload
            assert "stopped" in css(browser, "#status-detail")[0].text
        finally:
            _, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert "Traceback" not in viewer.stderr and "viewer: /api/runs/live" not in viewer.stderr, viewer.stderr
