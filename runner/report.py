"""`anytime report RUN [RUN ...]`: quality per budget, Anytime Index and dollars, from the ledger alone.

What counts:
- snapshots only of the execution a `JobDone` names (``job_id`` and ``instance``): a crashed
  partial execution's snapshots are ignored, its attempts are not (they were paid);
- spend is the sum of every `Attempt.usd` (failed, cancelled and retried attempts included);
- synthesis attempts (PDP / LEAP) are charged to their (model, dataset, method) through the
  `Synthesis` record's key, reported in total and amortised per evaluated problem.

Outputs: rich tables (`print_report`), and `report.json`, `report.md`, `anytime.png` in the run
folder (`write_report`). The plot needs the optional extra ``plot`` (matplotlib).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from runner.anytime import CurveSummary, Difference, Interval, Mode, paired_difference, summarize
from runner.errors import LedgerError
from runner.records import Attempt, JobDone, Record, RunHeader, Snapshot, Synthesis

Key = tuple[str, str, str]  # (model, dataset, method) keys of the manifest
BASELINE_METHOD_KINDS = ("cot",)


class Cell(msgspec.Struct, kw_only=True):
    """One (model, dataset, method) row of the report."""

    model: str
    dataset: str
    method: str
    summary: CurveSummary
    exact_final: float | None  # trip planning: official exact match at the last budget
    exact_full: float | None
    usd_eval: float  # trace and answer calls of the evaluated problems
    usd_synthesis: float  # PDP / LEAP preference data, built once
    usd_total: float
    usd_per_problem: float  # everything, amortised over the evaluated problems
    synthesis_per_problem: float
    usd_per_ai_point: float | None
    input_tokens: int
    output_tokens: int
    calls: int
    attempts: int
    retries: int  # attempts after the first of their call
    fidelity: str
    counted_to_billed: float | None  # our token count over the provider's, where both exist
    approximate_tokens: bool


class Paired(msgspec.Struct, kw_only=True):
    """A method minus the baseline on the same model, dataset and problems."""

    model: str
    dataset: str
    method: str
    baseline: str
    difference: Difference


class RunReport(msgspec.Struct, kw_only=True):
    run_dir: str
    run_id: str
    name: str
    mode: Mode
    cells: list[Cell]
    differences: list[Paired]
    usd_total: float
    usd_unattributed: float  # attempts of jobs that never finished and left no snapshot
    jobs_done: int


class Report(msgspec.Struct, kw_only=True):
    runs: list[RunReport]
    compare: bool = False

    def __rich__(self) -> Any:
        from rich.console import Group

        parts: list[Any] = [_run_tables(run) for run in self.runs]
        if self.compare and len(self.runs) > 1:
            parts.append(_compare_table(self.runs))
        return Group(*parts)


# --- reading a ledger -------------------------------------------------------------------------


class _Run:
    """The records of one run folder, sorted into what the report needs."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.header: RunHeader | None = None
        self.attempts: list[Attempt] = []
        self.snapshots: list[Snapshot] = []
        self.done: dict[str, JobDone] = {}
        self.synthesis: dict[str, Synthesis] = {}
        for record in records:
            if isinstance(record, Attempt):
                self.attempts.append(record)
            elif isinstance(record, Snapshot):
                self.snapshots.append(record)
            elif isinstance(record, JobDone):
                self.done[record.job_id] = record
            elif isinstance(record, Synthesis):
                self.synthesis[record.key] = record
            elif isinstance(record, RunHeader) and self.header is None:
                self.header = record

    def counted_snapshots(self) -> list[Snapshot]:
        return [
            s
            for s in self.snapshots
            if s.job_id in self.done and self.done[s.job_id].instance == s.instance
        ]

    def key_of_job(self) -> dict[str, Key]:
        keys = {s.job_id: (s.model, s.dataset, s.method) for s in self.snapshots}
        keys.update({j.job_id: (j.model, j.dataset, j.method) for j in self.done.values()})
        return keys


def _read_records(run_dir: Path) -> Iterable[Record]:
    try:
        from runner.ledger import iter_records
    except ImportError:  # the ledger module is optional for reading: decode the lines directly
        return _decode_lines(run_dir)
    return iter_records(run_dir)


def _decode_lines(run_dir: Path) -> Iterable[Record]:
    decoder = msgspec.json.Decoder(Record)
    path = run_dir / "ledger.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise LedgerError(f"{path}: no ledger here")
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip() and line.endswith(b"\n"):
                try:
                    yield decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise LedgerError(f"{path}:{number}: not a ledger record: {exc}") from None


# --- building the report ----------------------------------------------------------------------


def build_report(run_dirs: Sequence[str | Path], compare: bool = False) -> Report:
    """Read each run folder's ledger and compute every cell of the report.

    Raises:
        LedgerError: a folder has no ledger or a line is not a ledger record.
    """
    return Report(runs=[_build_run(Path(d)) for d in run_dirs], compare=compare)


def _build_run(run_dir: Path) -> RunReport:
    run = _Run(_read_records(run_dir))
    manifest = run.header.manifest if run.header else {}
    run_table = manifest.get("run", {}) if isinstance(manifest, dict) else {}
    mode: Mode = (
        run_table.get("anytime_mode", "mean_then_max")
        if isinstance(run_table, dict)
        else "mean_then_max"
    )
    seed = int(run_table.get("seed", 0)) if isinstance(run_table, dict) else 0

    scores: dict[Key, dict[str, dict[int, dict[int | None, float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    exact: dict[Key, dict[str, dict[int, dict[int | None, float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for snap in run.counted_snapshots():
        key = (snap.model, snap.dataset, snap.method)
        scores[key][snap.problem_id].setdefault(snap.sample, {})[snap.budget] = snap.score
        if snap.exact is not None:
            exact[key][snap.problem_id].setdefault(snap.sample, {})[snap.budget] = snap.exact

    job_keys = run.key_of_job()
    synth_keys = {k: (s.model, s.dataset, s.method) for k, s in run.synthesis.items()}
    attempts_by_key: dict[Key, list[Attempt]] = defaultdict(list)
    synthesis_by_key: dict[Key, list[Attempt]] = defaultdict(list)
    unattributed = 0.0
    for attempt in run.attempts:
        if attempt.kind == "synthesis":
            key = synth_keys.get(attempt.job_id.split(":")[1] if ":" in attempt.job_id else "")
            if key is not None:
                synthesis_by_key[key].append(attempt)
                continue
        elif attempt.job_id in job_keys:
            attempts_by_key[job_keys[attempt.job_id]].append(attempt)
            continue
        unattributed += attempt.usd

    cells: list[Cell] = []
    for key in sorted(scores):
        budgets = sorted(
            {b for samples in scores[key].values() for c in samples.values() for b in c if b is not None}
        )
        if not budgets:
            continue
        jobs = [j for j in run.done.values() if (j.model, j.dataset, j.method) == key]
        cells.append(
            _cell(
                key,
                scores[key],
                exact.get(key),
                budgets,
                mode,
                seed,
                attempts_by_key[key],
                synthesis_by_key[key],
                jobs,
            )
        )
    return RunReport(
        run_dir=str(run_dir),
        run_id=run.header.run_id if run.header else run_dir.name,
        name=str(run_table.get("name", run_dir.name)) if isinstance(run_table, dict) else run_dir.name,
        mode=mode,
        cells=cells,
        differences=_differences(scores, cells, manifest, mode, seed),
        usd_total=sum(a.usd for a in run.attempts),
        usd_unattributed=unattributed,
        jobs_done=len(run.done),
    )


def _cell(
    key: Key,
    table: dict,
    exact_table: dict | None,
    budgets: list[int],
    mode: Mode,
    seed: int,
    attempts: list[Attempt],
    synthesis: list[Attempt],
    jobs: list[JobDone],
) -> Cell:
    summary = summarize(table, budgets, mode, seed)
    exact_summary = summarize(exact_table, budgets, mode, seed) if exact_table else None
    usd_eval = sum(a.usd for a in attempts)
    usd_synth = sum(a.usd for a in synthesis)
    everything = attempts + synthesis
    problems = max(summary.problems, 1)
    reported = [a for a in everything if a.input_tokens is not None and a.output_tokens is not None]
    billed = sum((a.input_tokens or 0) + (a.output_tokens or 0) for a in reported)
    counted = sum(a.input_tokens_counted + a.output_tokens_counted for a in reported)
    ai = summary.anytime_index.value
    return Cell(
        model=key[0],
        dataset=key[1],
        method=key[2],
        summary=summary,
        exact_final=exact_summary.final.value if exact_summary else None,
        exact_full=exact_summary.full.value if exact_summary and exact_summary.full else None,
        usd_eval=usd_eval,
        usd_synthesis=usd_synth,
        usd_total=usd_eval + usd_synth,
        usd_per_problem=(usd_eval + usd_synth) / problems,
        synthesis_per_problem=usd_synth / problems,
        usd_per_ai_point=(usd_eval + usd_synth) / ai if ai > 0 else None,
        input_tokens=sum(_tokens(a.input_tokens, a.input_tokens_counted) for a in everything),
        output_tokens=sum(_tokens(a.output_tokens, a.output_tokens_counted) for a in everything),
        calls=len({a.call_id for a in everything}),
        attempts=len(everything),
        retries=sum(1 for a in everything if a.attempt > 1),
        fidelity=", ".join(sorted({j.fidelity for j in jobs})) or "?",
        counted_to_billed=counted / billed if billed else None,
        approximate_tokens=any(j.approximate_tokens for j in jobs),
    )


def _tokens(reported: int | None, counted: int) -> int:
    return reported if reported is not None else counted


def _differences(
    scores: dict, cells: list[Cell], manifest: object, mode: Mode, seed: int
) -> list[Paired]:
    """Each non-baseline method minus the baseline (cot) on the same model, dataset and problems."""
    methods = manifest.get("methods", {}) if isinstance(manifest, dict) else {}
    kind_of = {
        name: (m.get("kind", name) if isinstance(m, dict) else name) for name, m in methods.items()
    }
    baselines = [c for c in cells if kind_of.get(c.method, c.method) in BASELINE_METHOD_KINDS]
    out: list[Paired] = []
    for cell in cells:
        if cell in baselines:
            continue
        for base in baselines:
            same = (base.model, base.dataset, base.summary.budgets)
            if same != (cell.model, cell.dataset, cell.summary.budgets):
                continue
            diff = paired_difference(
                scores[(cell.model, cell.dataset, cell.method)],
                scores[(base.model, base.dataset, base.method)],
                cell.summary.budgets,
                mode,
                seed,
                labels=(cell.method, base.method),
            )
            if diff is not None:
                out.append(
                    Paired(
                        model=cell.model,
                        dataset=cell.dataset,
                        method=cell.method,
                        baseline=base.method,
                        difference=diff,
                    )
                )
    return out


# --- rendering --------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ci(interval: Interval, scale: float = 1.0) -> str:
    if interval.lo is None or interval.hi is None:
        return f"{scale * interval.value:.1f}"
    return f"{scale * interval.value:.1f} [{scale * interval.lo:.1f}, {scale * interval.hi:.1f}]"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _budget_header(budget: int) -> str:
    return f"{budget // 1024}k" if budget >= 1024 and budget % 1024 == 0 else str(budget)


def _datasets(run: RunReport) -> list[str]:
    return sorted({cell.dataset for cell in run.cells})


def _compact(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e4 else str(n)


def quality_rows(run: RunReport, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Quality x100 at each budget, on the full trace, and the Anytime Index, for one dataset."""
    cells = [c for c in run.cells if c.dataset == dataset]
    budgets = sorted({b for cell in cells for b in cell.summary.budgets})
    with_exact = any(c.exact_final is not None for c in cells)
    header = ["model", "method", "n", *map(_budget_header, budgets), "full", "AI", "AI 95% CI"]
    header += ["exact (last/full)"] if with_exact else []
    rows = []
    for cell in cells:
        at = dict(zip(cell.summary.budgets, cell.summary.quality, strict=True))
        ai = cell.summary.anytime_index
        row = [
            cell.model,
            cell.method,
            str(cell.summary.problems),
            *(_pct(at.get(b)) for b in budgets),
            _pct(cell.summary.full.value if cell.summary.full else None),
            f"{ai.value:.1f}",
            "—" if ai.lo is None else f"{ai.lo:.1f}–{ai.hi:.1f}",
        ]
        if with_exact:
            row.append(
                "—" if cell.exact_final is None else f"{_pct(cell.exact_final)}/{_pct(cell.exact_full)}"
            )
        rows.append(row)
    return header, rows


def cost_rows(run: RunReport, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Dollars, tokens, calls and measurement labels for one dataset."""
    header = [
        "model",
        "method",
        "$ total",
        "$/problem",
        "synthesis $ (/problem)",
        "$/AI pt",
        "tokens in/out",
        "calls (retries)",
        "fidelity",
        "counted/billed",
    ]
    rows = []
    for cell in (c for c in run.cells if c.dataset == dataset):
        rows.append(
            [
                cell.model,
                cell.method,
                _usd(cell.usd_total),
                _usd(cell.usd_per_problem),
                "—"
                if not cell.usd_synthesis
                else f"{_usd(cell.usd_synthesis)} ({_usd(cell.synthesis_per_problem)})",
                _usd(cell.usd_per_ai_point),
                f"{_compact(cell.input_tokens)}/{_compact(cell.output_tokens)}",
                f"{cell.calls} ({cell.retries})",
                cell.fidelity + ("*" if cell.approximate_tokens else ""),
                "—" if cell.counted_to_billed is None else f"{cell.counted_to_billed:.3f}",
            ]
        )
    return header, rows


def difference_rows(run: RunReport, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Paired differences against the baseline, in points, with 95% bootstrap intervals."""
    header = ["model", "method − baseline", "n", "Δ AI", "Δ AI 95% CI", "Δ final", "Δ final 95% CI"]
    rows = []
    for p in (p for p in run.differences if p.dataset == dataset):
        ai, final = p.difference.anytime_index, p.difference.final
        rows.append(
            [
                p.model,
                f"{p.method} − {p.baseline}",
                str(p.difference.problems),
                f"{ai.value:+.1f}",
                "—" if ai.lo is None else f"{ai.lo:+.1f} to {ai.hi:+.1f}",
                f"{100 * final.value:+.1f}",
                "—" if final.lo is None else f"{100 * final.lo:+.1f} to {100 * final.hi:+.1f}",
            ]
        )
    return header, rows


def _table(title: str, header: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(header):
        table.add_column(
            column, justify="left" if i < 2 or column == "fidelity" else "right", no_wrap=i < 2
        )
    for row in rows:
        table.add_row(*row)
    return table


def _run_tables(run: RunReport) -> Any:
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for dataset in _datasets(run):
        parts.append(
            _table(f"{run.name} · {dataset}: quality x100 per budget", *quality_rows(run, dataset))
        )
        parts.append(_table(f"{run.name} · {dataset}: cost", *cost_rows(run, dataset)))
        if any(p.dataset == dataset for p in run.differences):
            parts.append(
                _table(
                    f"{run.name} · {dataset}: paired differences (points)",
                    *difference_rows(run, dataset),
                )
            )
    parts.append(Text(_footer(run), style="dim"))
    return Group(*parts)


def _footer(run: RunReport) -> str:
    text = (
        f"{run.jobs_done} jobs done; spend {_usd(run.usd_total)} in all"
        f" (of which {_usd(run.usd_unattributed)} on unfinished jobs). Anytime Index mode: {run.mode}; "
        "intervals: 95% bootstrap over problems."
    )
    if any(c.approximate_tokens for c in run.cells):
        text += " * approximate tokens: counted with an encoding that is not the model's own tokenizer."
    return text


def _compare_table(runs: list[RunReport]) -> Any:
    header, rows = compare_rows(runs)
    return _table("runs side by side: Anytime Index / final quality (x100) / $ total", header, rows)


def compare_rows(runs: list[RunReport]) -> tuple[list[str], list[list[str]]]:
    keys = sorted({(c.model, c.dataset, c.method) for run in runs for c in run.cells})
    header = ["model", "dataset", "method", *(run.name or run.run_id for run in runs)]
    rows = []
    for key in keys:
        row = list(key)
        for run in runs:
            cell = next((c for c in run.cells if (c.model, c.dataset, c.method) == key), None)
            row.append(
                "—"
                if cell is None
                else f"{cell.summary.anytime_index.value:.1f} / {_pct(cell.summary.final.value)} / "
                f"{_usd(cell.usd_total)}"
            )
        rows.append(row)
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The report as Markdown: the same tables as the terminal."""
    out: list[str] = []
    for run in report.runs:
        out += [f"# Report: {run.name} ({run.run_id})", ""]
        for dataset in _datasets(run):
            out += [
                f"## {dataset}",
                "",
                "Quality x100 per budget:",
                "",
                _markdown_table(*quality_rows(run, dataset)),
                "",
                "Cost:",
                "",
                _markdown_table(*cost_rows(run, dataset)),
                "",
            ]
            if any(p.dataset == dataset for p in run.differences):
                out += [
                    "Paired differences (points):",
                    "",
                    _markdown_table(*difference_rows(run, dataset)),
                    "",
                ]
        out += [_footer(run), ""]
    if report.compare and len(report.runs) > 1:
        out += ["# Runs side by side", "", _markdown_table(*compare_rows(report.runs)), ""]
    return "\n".join(out)


def print_report(report: Report, console: Any) -> None:
    """Print the report's tables on a rich Console."""
    console.print(report)


def write_report(report: Report, run_dir: str | Path) -> list[Path]:
    """Write report.json, report.md and (when matplotlib is installed) anytime.png into ``run_dir``.

    Returns the paths written. A missing matplotlib is not an error: the PNG is skipped and
    `runner.plot.MISSING_HINT` says how to install it.
    """
    from runner.plot import PlotUnavailable, plot_report

    folder = Path(run_dir)
    written = [folder / "report.json", folder / "report.md"]
    written[0].write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    written[1].write_text(render_markdown(report), encoding="utf-8")
    try:
        written.append(plot_report(report, folder / "anytime.png"))
    except PlotUnavailable:
        pass
    return written


# --- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) holding ledger.jsonl")
    parser.add_argument("--compare", action="store_true", help="set the runs side by side")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from runner.plot import MISSING_HINT, PlotUnavailable, plot_report

    report = build_report(args.runs, compare=args.compare)
    plot_missing = False
    for run in report.runs:
        single = Report(runs=[run])
        folder = Path(run.run_dir)
        (folder / "report.json").write_bytes(
            msgspec.json.format(msgspec.json.encode(single), indent=2) + b"\n"
        )
        (folder / "report.md").write_text(render_markdown(single), encoding="utf-8")
        try:
            plot_report(single, folder / "anytime.png")
        except PlotUnavailable:
            plot_missing = True
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
        return 0
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no width to fit, keep rows whole
        console = Console(width=200)
    print_report(report, console)
    folders = ", ".join(run.run_dir for run in report.runs)
    console.print(f"wrote report.json, report.md{'' if plot_missing else ', anytime.png'} in {folders}")
    if plot_missing:
        console.print(f"anytime.png skipped: {MISSING_HINT}")
    return 0
