// anytime view: one run: the report's table and the curves
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

// ---- one run ----------------------------------------------------------------------------------

function colorOf(run) {
  const keys = run.report.cells.map(cellKey);
  return (c) => Charts.PALETTE[keys.indexOf(cellKey(c)) % Charts.PALETTE.length];
}

// what the run took from calls already paid for (docs/reuse.md): apart from its spend, never in it
function reusedFact(reuse) {
  if (!reuse || !(reuse.traces || reuse.answers || reuse.continued || reuse.requested)) return null;
  const parts = [`${reuse.traces} traces, ${reuse.answers} answers: ${fmt.usd(reuse.usd_not_spent)} not spent`];
  if (reuse.continued) parts.push(`${reuse.continued} continued`);
  if (reuse.requested) parts.push(`${reuse.requested} requested again`);
  const from = reuse.sources.map((s) => s.split("/").pop()).join(", ");
  return ["reused", `${parts.join(", ")} (from ${from})`, "reused"];
}

function qualityTable(run, dataset) {
  const cells = run.report.cells.filter((c) => c.dataset === dataset);
  const budgets = [...new Set(cells.flatMap((c) => c.summary.budgets))].sort((a, b) => a - b);
  const color = colorOf(run);
  const link = (c, b) => `#/run/${encodeURIComponent(run.id)}/problems${query({ model: c.model, method: c.method, dataset, budget: b, outcome: "right" })}`;
  const head = ["cell", "n", ...budgets.map(fmt.budget), "full", "AI", "AI 95% CI", "$ total", "$/problem", "tokens in / out", "calls (retries)", "fidelity"];
  const rows = cells.map((c) => {
    const at = Object.fromEntries(c.summary.budgets.map((b, i) => [b, c.summary.quality[i]]));
    return h(
      "tr",
      { dataset: { cell: cellKey(c) } },
      h("td", {}, h("span", { class: "dot", style: `background:${color(c)}` }), cellName(c)),
      h("td", { class: "num" }, c.summary.problems),
      budgets.map((b) => h("td", { class: "num" }, b in at ? h("a", { href: link(c, b), title: `the traces of ${cellName(c)} right at ${b} tokens` }, fmt.q(at[b])) : "—")),
      h("td", { class: "num" }, fmt.q(c.summary.full ? c.summary.full.value : null)),
      h("td", { class: "num" }, h("b", {}, fmt.pts(c.summary.anytime_index.value))),
      h("td", { class: "num ci" }, fmt.ci(c.summary.anytime_index) || "—"),
      h("td", { class: "num" }, fmt.usd(c.usd_total)),
      h("td", { class: "num" }, fmt.usd(c.usd_per_problem)),
      h("td", { class: "num" }, `${fmt.count(c.input_tokens)} / ${fmt.count(c.output_tokens)}`),
      h("td", { class: "num" }, `${c.calls} (${c.retries})`),
      h("td", {}, c.fidelity),
    );
  });
  return h("div", { class: "table-scroll" }, h("table", { class: "cells" }, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))), h("tbody", {}, rows)));
}

function curveCharts(run, dataset) {
  const curves = run.curves.filter((c) => c.dataset === dataset);
  const color = colorOf(run);
  const budgets = [...new Set(curves.flatMap((c) => c.points.map((p) => p.budget)))].sort((a, b) => a - b);
  const quality = curves.map((c) => ({
    label: cellName(c),
    cell: cellKey(c),
    color: color(c),
    band: true,
    points: c.points.map((p) => ({
      x: p.budget,
      y: 100 * p.quality.value,
      lo: p.quality.lo == null ? null : 100 * p.quality.lo,
      hi: p.quality.hi == null ? null : 100 * p.quality.hi,
      budget: p.budget,
      tip: `${cellName(c)} at ${p.budget} tokens: ${fmt.q(p.quality.value)} ${fmt.ci(p.quality, 100)}`,
    })),
  }));
  const best = curves.map((c) => ({
    label: `${cellName(c)} (AI ${fmt.pts(run.report.cells.find((x) => cellKey(x) === cellKey(c)).summary.anytime_index.value)})`,
    cell: cellKey(c),
    color: color(c),
    dashed: true,
    band: true,
    points: c.points.map((p) => ({
      x: p.budget,
      y: p.running_best ? 100 * p.running_best.value : null,
      lo: p.running_best && p.running_best.lo != null ? 100 * p.running_best.lo : null,
      hi: p.running_best && p.running_best.hi != null ? 100 * p.running_best.hi : null,
      budget: p.budget,
      tip: p.running_best ? `best up to ${p.budget}: ${fmt.q(p.running_best.value)} ${fmt.ci(p.running_best, 100)}` : "",
    })),
  }));
  const dollars = curves.map((c) => ({
    label: cellName(c),
    cell: cellKey(c),
    color: color(c),
    points: c.points.map((p) => ({ x: p.usd, y: 100 * p.quality.value, budget: p.budget, tip: `${p.budget} tokens: ${fmt.q(p.quality.value)} for ${fmt.usd(p.usd)} per trace` })),
  }));
  const common = { xLog: true, xTicks: budgets, xFormat: fmt.budget, yMin: 0, yMax: 100, xLabel: "reasoning budget (tokens, log scale)", yLabel: "quality ×100" };
  return h(
    "div",
    { class: "charts" },
    Charts.lineChart({ ...common, title: "Quality per budget, 95% bootstrap bands", series: quality, className: "chart-quality" }),
    Charts.lineChart({ ...common, title: "Running best, 95% bands (its area is the Anytime Index)", series: best, className: "chart-best" }),
    Charts.lineChart({
      title: "Quality against dollars per trace answered at each budget",
      series: dollars,
      xLog: false,
      xFormat: (v) => fmt.usd(v),
      yMin: 0,
      yMax: 100,
      xLabel: "dollars per trace (prompt, output up to b, one answer at b)",
      yLabel: "quality ×100",
      className: "chart-dollars",
    }),
  );
}

function notesList(notes) {
  if (!notes.length) return null;
  return h(
    "details",
    {},
    h("summary", {}, `Notes in the ledger (${notes.length})`),
    h("table", {}, h("tbody", {}, notes.map((n) => h("tr", {}, h("td", { class: "small muted" }, fmt.time(n.at)), h("td", {}, h("code", {}, n.kind)), h("td", {}, n.message))))),
  );
}

function renderRun(run) {
  const s = run.status;
  const datasets = [...new Set(run.report.cells.map((c) => c.dataset))].sort();
  const id = encodeURIComponent(run.id);
  put(
    h("div", { class: "muted small" }, h("a", { href: "#/" }, "Runs"), " › ", run.name),
    h("h1", {}, run.name, " ", badge(s.state)),
    h("div", { class: "muted", id: "status-detail" }, s.detail, " · ", run.path),
    facts([
      ["started", fmt.time(run.started_at)],
      ["processes", `${s.processes}${s.processes > 1 ? ` (resumed ${s.processes - 1}×)` : ""}`],
      ["jobs done", progress(run.jobs_done, run.jobs_planned), "jobs-done"],
      ["failed jobs", String(s.jobs_failed)],
      ["spend", s.usd_in_flight ? `${fmt.usd(run.usd_total)} + ${fmt.usd(s.usd_in_flight)} streaming` : fmt.usd(run.usd_total), "spend"],
      reusedFact(run.report.reuse),
      ["models", run.outline.models.join(", ")],
      ["budgets", run.outline.budgets.map(fmt.budget).join(" · ")],
      ["samples", String(run.outline.samples ?? "—")],
    ].filter(Boolean)),
    h(
      "div",
      { class: "actions" },
      h("a", { href: `#/run/${id}/problems`, id: "to-problems" }, "Problems table →"),
      h("a", { href: `#/compare${query({ a: run.id, b: run.id })}` }, "Compare this run's cells →"),
      h("a", { href: `#/compare${query({ a: run.id })}` }, "Compare with another run →"),
    ),
    run.transcripts.available ? null : h("div", { class: "note-box missing", id: "transcripts-state" }, run.transcripts.message),
    s.torn_tail_bytes ? h("div", { class: "note-box" }, `The ledger's last line (${s.torn_tail_bytes} bytes) is not complete yet: it is being written, or a crash tore it (the next run cuts it off).`) : null,
    run.report.cells.length ? null : h("div", { class: "note-box" }, "No graded traces yet."),
    datasets.map((d) => [h("h2", {}, d), qualityTable(run, d), curveCharts(run, d)]),
    h("p", { class: "muted small" }, `Quality ×100 (the problem is the unit; samples averaged first); bands and intervals: 95% percentile bootstrap over problems, seed ${run.manifest && run.manifest.run ? run.manifest.run.seed : 0}. Anytime Index mode: ${run.report.mode}. Spend: $${run.usd_total.toFixed(6)} (of which ${fmt.usd(run.report.usd_interrupted)} lost to interruptions, ${fmt.usd(run.report.usd_unattributed)} on unfinished jobs).`),
    notesList(run.notes),
    h("details", {}, h("summary", {}, `Manifest (${run.manifest_path || "not recorded"})`), h("pre", { class: "json" }, JSON.stringify(run.manifest, null, 2))),
    h("details", {}, h("summary", {}, "Prices used (USD per 1M tokens)"), h("pre", { class: "json" }, JSON.stringify(run.prices, null, 2))),
  );
}

function runPage(serial, runId) {
  return livePage(serial, () => api(`/api/runs/${encodeURIComponent(runId)}`), renderRun, (r) => r.status.state === "in_progress", 1500);
}
