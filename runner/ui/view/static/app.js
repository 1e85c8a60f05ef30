// anytime view: the pages. Routes live in the URL's #, data comes from /api/*, charts from charts.js.
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

const view = document.getElementById("view");
const banner = document.getElementById("banner");
const liveBadge = document.getElementById("live");
let pollTimer = null;
let routeSerial = 0;

// ---- small helpers ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  return node;
}

// the page's content, children as `h` takes them (arrays flattened, null and false left out)
function put(...children) {
  view.replaceChildren(h("div", { class: "page" }, ...children));
}

class ApiError extends Error {}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store" });
  } catch (err) {
    throw new ApiError("the viewer is not answering (was `anytime view` stopped?)");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    throw new ApiError(`${path}: the viewer answered ${response.status} without JSON`);
  }
  if (!response.ok) throw new ApiError(body && body.error ? body.error : `${path}: HTTP ${response.status}`);
  return body;
}

const fmt = {
  usd(x) {
    if (x == null || Number.isNaN(x)) return "—";
    if (Math.abs(x) < 1) return "$" + x.toFixed(4);
    if (Math.abs(x) < 1000) return "$" + x.toFixed(2);
    return "$" + Math.round(x).toLocaleString("en-US");
  },
  q(x) {
    return x == null || Number.isNaN(x) ? "—" : (100 * x).toFixed(1);
  },
  pts(x) {
    return x == null || Number.isNaN(x) ? "—" : x.toFixed(1);
  },
  count(n) {
    if (n == null) return "—";
    for (const [bound, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (Math.abs(n) >= bound) return (n / bound).toFixed(1).replace(/\.0$/, "") + suffix;
    }
    return String(Math.round(n));
  },
  budget(b) {
    return b >= 1024 && b % 1024 === 0 ? `${b / 1024}k` : String(b);
  },
  time(t) {
    return t ? new Date(t * 1000).toLocaleString() : "—";
  },
  ci(iv, scale) {
    const s = scale || 1;
    if (!iv || iv.lo == null || iv.hi == null) return "";
    const n = (v) => (s * v).toFixed(1).replace("-", "−");
    return `[${n(iv.lo)}, ${n(iv.hi)}]`;
  },
  signed(x) {
    return x == null || Number.isNaN(x) ? "—" : (x > 0 ? "+" : "") + x.toFixed(1).replace("-", "−");
  },
};

const FULL = 1 - 1e-9;

function mark(score, title) {
  if (score == null) return h("span", { class: "mark none", title: title || "no cut here" }, "—");
  if (score >= FULL) return h("span", { class: "mark right", title }, "✓");
  if (score <= 0) return h("span", { class: "mark wrong", title }, "✗");
  return h("span", { class: "mark partial", title }, Math.round(100 * score));
}

function badge(state, text) {
  return h("span", { class: `badge ${state}`, id: "status" }, text || state.replace("_", " "));
}

function cellName(c) {
  return `${c.model} · ${c.method}`;
}

function cellKey(c) {
  return `${c.model}/${c.dataset}/${c.method}`;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "" && v !== false) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function showError(message, where) {
  put(
    h("h1", { text: where || "Cannot show this page" }),
    h("div", { class: "error-message", role: "alert" }, message),
    h("p", {}, h("a", { href: "#/" }, "← all runs")),
  );
}

function setLive(text) {
  liveBadge.hidden = !text;
  liveBadge.textContent = text || "";
}

function facts(pairs) {
  return h(
    "div",
    { class: "facts" },
    pairs.map(([label, value, id]) => h("div", {}, h("span", { class: "label" }, label), h("span", { class: "value", id }, value))),
  );
}

// Load, render, and (while `again(data)`) poll: re-render only when the data changed.
async function livePage(serial, load, render, again, every, isLive) {
  const live = isLive || again;
  const data = await load();
  if (serial !== routeSerial) return;
  render(data);
  let last = JSON.stringify(data);
  const tick = async () => {
    if (serial !== routeSerial) return;
    try {
      const fresh = await load();
      if (serial !== routeSerial) return;
      const sig = JSON.stringify(fresh);
      if (sig !== last) {
        last = sig;
        const y = window.scrollY;
        render(fresh);
        window.scrollTo(0, y);
      }
      setLive(live(fresh) ? `live · ${new Date().toLocaleTimeString()}` : "");
      if (again(fresh)) pollTimer = setTimeout(tick, every);
    } catch (err) {
      setLive("");
      showError(err.message);
    }
  };
  setLive(live(data) ? `live · ${new Date().toLocaleTimeString()}` : "");
  if (again(data)) pollTimer = setTimeout(tick, every);
}

// ---- the runs ---------------------------------------------------------------------------------

function progress(done, planned) {
  if (!planned) return h("span", { dataset: { done } }, `${done} jobs`);
  const pct = Math.min(100, (100 * done) / planned);
  return h("span", { dataset: { done } }, h("span", { class: "progress", title: `${pct.toFixed(0)}%` }, h("span", { style: `width:${pct}%` })), ` ${done} / ${planned}`);
}

function runsTable(runs) {
  const rows = runs.map((r) => {
    if (r.error) {
      return h(
        "tr",
        { class: "status-error", dataset: { run: r.id } },
        h("td", {}, h("a", { href: `#/run/${encodeURIComponent(r.id)}` }, r.name)),
        h("td", {}, badge("unreadable")),
        h("td", { colspan: 5 }, h("span", { class: "error-message small" }, r.error)),
      );
    }
    const o = r.outline;
    return h(
      "tr",
      { dataset: { run: r.id } },
      h("td", {}, h("a", { href: `#/run/${encodeURIComponent(r.id)}` }, r.name), h("div", { class: "muted small" }, r.path)),
      h("td", {}, badge(r.status.state), h("div", { class: "muted small" }, r.status.detail)),
      h("td", { class: "small" }, `${o.models.join(", ")}`, h("div", { class: "muted" }, `${o.datasets.join(", ")} · ${o.methods.join(", ")}`)),
      h("td", { class: "small" }, o.budgets.map(fmt.budget).join(" · ")),
      h("td", {}, progress(r.jobs_done, r.jobs_planned)),
      h("td", { class: "num" }, fmt.usd(r.usd_total)),
      h(
        "td",
        { class: "small" },
        r.cells.map((c) => h("div", {}, `${c.model} · ${c.method}${o.datasets.length > 1 ? " · " + c.dataset : ""}: `, h("b", {}, fmt.pts(c.anytime_index.value)), " ", h("span", { class: "ci" }, fmt.ci(c.anytime_index)))),
      ),
    );
  });
  return h(
    "table",
    { id: "runs-table" },
    h("thead", {}, h("tr", {}, ["run", "status", "models / datasets · methods", "budgets", "jobs", "spend", "Anytime Index (95% CI)"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

function runsPage(serial) {
  return livePage(
    serial,
    () => api("/api/runs"),
    (data) => {
      banner.hidden = !data.problems.length;
      banner.textContent = data.problems.join("; ");
      const where = data.ledgers ? `Run folders in ${data.ledgers}` : "The run folders given";
      put(
        h("h1", {}, "Runs"),
        h("p", { class: "muted" }, `${where}; newest results are read from each ledger as it grows.`),
        data.runs.length ? runsTable(data.runs) : h("div", { class: "note-box missing" }, "No runs yet: `anytime run manifests/demo.toml` makes one."),
        data.runs.length > 1 ? h("p", {}, h("a", { href: `#/compare${query({ a: data.runs[0].id, b: data.runs[1].id })}` }, "Compare two runs →")) : null,
      );
    },
    () => true,
    3000,
    (data) => data.runs.some((r) => r.status && r.status.state === "in_progress"),
  );
}

// ---- one run ----------------------------------------------------------------------------------

function colorOf(run) {
  const keys = run.report.cells.map(cellKey);
  return (c) => Charts.PALETTE[keys.indexOf(cellKey(c)) % Charts.PALETTE.length];
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
    points: c.points.map((p) => ({ x: p.budget, y: 100 * p.running_best, budget: p.budget, tip: `best up to ${p.budget}: ${fmt.q(p.running_best)}` })),
  }));
  const dollars = curves.map((c) => ({
    label: cellName(c),
    cell: cellKey(c),
    color: color(c),
    points: c.points.map((p) => ({ x: p.usd_per_problem, y: 100 * p.quality.value, budget: p.budget, tip: `${p.budget} tokens: ${fmt.q(p.quality.value)} for ${fmt.usd(p.usd_per_problem)} per problem` })),
  }));
  const common = { xLog: true, xTicks: budgets, xFormat: fmt.budget, yMin: 0, yMax: 100, xLabel: "reasoning budget (tokens, log scale)", yLabel: "quality ×100" };
  return h(
    "div",
    { class: "charts" },
    Charts.lineChart({ ...common, title: "Quality per budget, 95% bootstrap bands", series: quality, className: "chart-quality" }),
    Charts.lineChart({ ...common, title: "Running best (its area is the Anytime Index)", series: best, className: "chart-best" }),
    Charts.lineChart({
      title: "Quality against dollars per problem (to reach each budget)",
      series: dollars,
      xLog: false,
      xFormat: (v) => fmt.usd(v),
      yMin: 0,
      yMax: 100,
      xLabel: "dollars per problem",
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
      ["models", run.outline.models.join(", ")],
      ["budgets", run.outline.budgets.map(fmt.budget).join(" · ")],
      ["samples", String(run.outline.samples ?? "—")],
    ]),
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

// ---- the problems table -----------------------------------------------------------------------

const SORTABLE = { problem: "problem", model: "model", trace_tokens: "trace tokens", tokens: "tokens in / out", usd: "$", calls: "calls", retries: "retries" };

function select(name, options, value, label) {
  return h(
    "select",
    { name, id: `f-${name}`, "aria-label": label || name },
    options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, text)),
  );
}

function filterForm(runId, outline, params) {
  const any = (list) => [["", "any"], ...list.map((x) => [x, x])];
  const budgets = outline.budgets.map((b) => [b, fmt.budget(b)]);
  const form = h(
    "form",
    { class: "filters", id: "filters" },
    h("fieldset", {}, h("legend", {}, "Cell"), h("label", {}, "model "), select("model", any(outline.models), params.get("model")), " ", h("label", {}, "method "), select("method", any(outline.methods), params.get("method")), outline.datasets.length > 1 ? [" ", h("label", {}, "dataset "), select("dataset", any(outline.datasets), params.get("dataset"))] : null),
    h("fieldset", {}, h("legend", {}, "Grade at a budget"), select("outcome", [["", "right or wrong"], ["right", "right"], ["wrong", "wrong"]], params.get("outcome")), h("label", {}, " at "), select("budget", [["", "—"], ...budgets], params.get("budget"))),
    h("fieldset", {}, h("legend", {}, "Flipped between two budgets"), select("flip", [["", "no filter"], ["gained", "wrong → right"], ["lost", "right → wrong"], ["changed", "either way"]], params.get("flip")), h("label", {}, " from "), select("flip_from", [["", "—"], ...budgets], params.get("flip_from")), h("label", {}, " to "), select("flip_to", [["", "—"], ...budgets], params.get("flip_to"))),
    h("fieldset", {}, h("legend", {}, "Against another cell, same problem, same budget"), h("label", {}, "model "), select("versus_model", any(outline.models), params.get("versus_model")), h("label", {}, " method "), select("versus_method", any(outline.methods), params.get("versus_method")), " ", select("versus", [["", "no filter"], ["wrong", "never solves it"], ["right", "always solves it"]], params.get("versus"))),
    h("fieldset", {}, h("legend", {}, "Other"), h("label", {}, h("input", { type: "checkbox", name: "failed", id: "f-failed", checked: params.get("failed") === "1" }), " only traces with failed calls"), " ", h("label", {}, " problem id "), h("input", { type: "text", name: "problem", id: "f-problem", value: params.get("problem") || "", size: 10 })),
    h("div", {}, h("button", { type: "submit", id: "apply" }, "Apply"), " ", h("a", { href: `#/run/${encodeURIComponent(runId)}/problems` }, "clear")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = {};
    for (const [k, v] of new FormData(form).entries()) next[k] = k === "failed" ? "1" : v;
    next.sort = params.get("sort");
    next.descending = params.get("descending");
    location.hash = `#/run/${encodeURIComponent(runId)}/problems${query(next)}`;
  });
  form.addEventListener("change", () => form.requestSubmit());
  return form;
}

function sortHeader(runId, params, key, label) {
  const current = params.get("sort") || "problem";
  const desc = params.get("descending") === "1";
  const next = new URLSearchParams(params);
  next.set("sort", key);
  const numeric = !["problem", "model"].includes(key);
  if (current === key) next.set("descending", desc ? "0" : "1");
  else next.set("descending", numeric ? "1" : "0");
  return h(
    "th",
    {
      class: `sortable${current === key ? " sorted" : ""}${current === key && !desc ? " asc" : ""}${numeric ? " num" : ""}`,
      "data-sort": key,
      onclick: () => (location.hash = `#/run/${encodeURIComponent(runId)}/problems?${next.toString()}`),
      title: `sort by ${label}`,
    },
    label,
  );
}

function traceRow(runId, r, budgets, manyDatasets) {
  const cut = Object.fromEntries(r.cuts.map((c) => [c.budget == null ? "full" : c.budget, c]));
  const tip = (c) => (c ? `answer ${c.answer || "(none)"} · ${c.tokens} tokens in the cut · ${fmt.usd(c.usd_to_here)} to here` : null);
  return h(
    "tr",
    { dataset: { job: r.job_id } },
    h("td", {}, h("a", { href: `#/run/${encodeURIComponent(runId)}/job/${r.job_id}`, class: "job-link" }, r.problem_id)),
    h("td", { class: "num" }, r.sample),
    h("td", {}, r.model),
    h("td", {}, r.method),
    manyDatasets ? h("td", {}, r.dataset) : null,
    budgets.map((b) => h("td", { class: "num", dataset: { budget: b } }, mark(cut[b] ? cut[b].score : null, tip(cut[b])))),
    h("td", { class: "num" }, mark(cut.full ? cut.full.score : null, tip(cut.full))),
    h("td", { class: "num" }, r.trace_tokens == null ? "—" : fmt.count(r.trace_tokens)),
    h("td", { class: "num" }, `${fmt.count(r.input_tokens)} / ${fmt.count(r.output_tokens)}`),
    h("td", { class: "num" }, fmt.usd(r.usd)),
    h("td", { class: "num" }, r.calls),
    h("td", { class: "num" }, r.retries),
    h("td", { class: "num" }, r.failed_attempts ? h("span", { class: "mark wrong", title: r.errors.join(", ") }, r.failed_attempts) : "0"),
    h("td", {}, r.state === "done" ? "" : badge(r.state)),
  );
}

function renderProblems(runId, params, data) {
  const budgets = data.outline.budgets;
  const many = data.outline.datasets.length > 1;
  const head = h(
    "tr",
    {},
    sortHeader(runId, params, "problem", "problem"),
    h("th", { class: "num" }, "sample"),
    sortHeader(runId, params, "model", "model"),
    h("th", {}, "method"),
    many ? h("th", {}, "dataset") : null,
    budgets.map((b) => h("th", { class: "num" }, fmt.budget(b))),
    h("th", { class: "num" }, "full"),
    sortHeader(runId, params, "trace_tokens", "trace tokens"),
    sortHeader(runId, params, "tokens", "tokens in / out"),
    sortHeader(runId, params, "usd", "$"),
    sortHeader(runId, params, "calls", "calls"),
    sortHeader(runId, params, "retries", "retries"),
    h("th", { class: "num" }, "failed"),
    h("th", {}, "state"),
  );
  const shown = data.rows.length;
  put(
    h("div", { class: "muted small" }, h("a", { href: "#/" }, "Runs"), " › ", h("a", { href: `#/run/${encodeURIComponent(runId)}` }, runId), " › problems"),
    h("h1", {}, "Problems"),
    filterForm(runId, data.outline, params),
    h(
      "p",
      { class: "summary-line", id: "match-summary" },
      h("b", { id: "matched" }, String(data.matched)),
      ` of ${data.total} traces match, on `,
      h("b", { id: "matched-problems" }, String(data.problems)),
      ` problems, ${fmt.usd(data.usd)} in all`,
      shown < data.matched ? ` (the first ${shown} shown)` : "",
      ". ✓ right, ✗ wrong, a number: partial credit ×100; hover a mark for the answer.",
    ),
    h("div", { class: "table-scroll" }, h("table", { id: "problems-table" }, h("thead", {}, head), h("tbody", {}, data.rows.map((r) => traceRow(runId, r, budgets, many))))),
  );
}

async function problemsPage(serial, runId, params) {
  const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
  const q = new URLSearchParams(params);
  return livePage(serial, () => api(`/api/runs/${encodeURIComponent(runId)}/traces?${q.toString()}`), (d) => renderProblems(runId, params, d), () => run.status.state === "in_progress", 2500);
}

// ---- one trace --------------------------------------------------------------------------------

function traceText(text, cuts, field, grades) {
  const here = cuts.filter((c) => (c.field || "reasoning") === field && c.offset != null).sort((a, b) => a.offset - b.offset);
  const box = h("div", { class: "trace", id: `trace-${field}` });
  let at = 0;
  for (const c of here) {
    box.appendChild(document.createTextNode(text.slice(at, c.offset)));
    const grade = grades[c.budget];
    box.appendChild(
      h(
        "span",
        { class: `cut-marker${grade == null ? "" : grade >= FULL ? " right" : " wrong"}`, id: `cut-${c.budget}`, dataset: { budget: c.budget }, title: `cut at ${c.budget} tokens (${c.tokens} in the cut)` },
        `✂ ${fmt.budget(c.budget)}`,
      ),
    );
    at = Math.max(at, c.offset);
  }
  if (at < text.length) box.appendChild(h("span", { class: here.length ? "after-last" : "" }, text.slice(at)));
  return box;
}

function answersTable(d) {
  const t = d.transcript;
  const texts = Object.fromEntries(((t && t.answers) || []).map((a) => [a.budget == null ? "full" : a.budget, a]));
  const gold = (t && t.gold) || (d.problem && d.problem.gold);
  const scrollTo = (b) => () => {
    const m = document.getElementById(`cut-${b}`);
    if (m) m.scrollIntoView({ block: "center" });
  };
  return h(
    "table",
    { id: "answers-table" },
    h("thead", {}, h("tr", {}, ["budget", "tokens in the cut", "forced answer", "extracted answer", "grade", "gold", "$ to here"].map((x) => h("th", {}, x)))),
    h(
      "tbody",
      {},
      d.row.cuts.map((c) => {
        const key = c.budget == null ? "full" : c.budget;
        const text = texts[key];
        return h(
          "tr",
          { dataset: { budget: key } },
          h("td", {}, c.budget == null ? "full trace" : h("a", { href: "javascript:void(0)", onclick: scrollTo(c.budget) }, fmt.budget(c.budget))),
          h("td", { class: "num" }, c.tokens),
          h("td", { class: "small" }, text ? h("span", { class: "mono" }, text.text) : h("span", { class: "muted" }, c.reused ? "(same cut as the budget before: its answer reused)" : "—")),
          h("td", {}, h("code", {}, c.answer || "(none)")),
          h("td", {}, mark(c.score), c.score > 0 && c.score < FULL ? ` ${(100 * c.score).toFixed(0)}` : ""),
          h("td", { class: "gold" }, (text && text.gold) || gold || "—"),
          h("td", { class: "num" }, fmt.usd(c.usd_to_here)),
        );
      }),
    ),
  );
}

function callsTable(calls) {
  const rows = calls.flatMap((call) =>
    call.attempts.map((a) =>
      h(
        "tr",
        { class: a.status === "ok" || a.status === "length" || a.status === "cancelled" ? "" : "status-error" },
        h("td", { class: "mono small" }, a.attempt === 1 ? call.call_id : ""),
        h("td", {}, call.kind),
        h("td", { class: "num" }, call.budget == null ? "—" : fmt.budget(call.budget)),
        h("td", { class: "num" }, a.attempt),
        h("td", {}, a.status),
        h("td", { class: "num" }, a.http_status ?? "—"),
        h("td", { class: "small" }, a.error_class ? `${a.error_class}: ${a.error || ""}` : ""),
        h("td", { class: "num" }, `${a.input_tokens ?? "—"} / ${a.input_tokens_counted}`),
        h("td", { class: "num" }, `${a.output_tokens ?? "—"} / ${a.output_tokens_counted}`),
        h("td", { class: "num" }, a.cached_input_tokens ?? "—"),
        h("td", { class: "num" }, fmt.usd(a.usd)),
        h("td", {}, a.priced_from),
        h("td", { class: "num" }, `${a.latency_s.toFixed(2)} s`),
      ),
    ),
  );
  const head = ["call", "kind", "budget", "attempt", "status", "HTTP", "error", "in (reported / counted)", "out (reported / counted)", "cached in", "$", "priced from", "latency"];
  return h("div", { class: "table-scroll" }, h("table", { id: "calls-table" }, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))), h("tbody", {}, rows)));
}

function messages(list) {
  return list.map((m) => h("div", { class: "message" }, h("div", { class: "role" }, m.role), h("pre", {}, m.content)));
}

function renderJob(runId, d) {
  const r = d.row;
  const t = d.transcript;
  const grades = Object.fromEntries(r.cuts.filter((c) => c.budget != null).map((c) => [c.budget, c.score]));
  const id = encodeURIComponent(runId);
  const statement = d.problem ? d.problem.statement : null;
  put(
    h("div", { class: "muted small" }, h("a", { href: "#/" }, "Runs"), " › ", h("a", { href: `#/run/${id}` }, runId), " › ", h("a", { href: `#/run/${id}/problems${query({ problem: r.problem_id })}` }, "problems"), " › ", r.job_id),
    h("h1", {}, `${r.problem_id} · ${r.model} · ${r.method} · sample ${r.sample} `, r.state === "done" ? null : badge(r.state)),
    facts([
      ["dataset", r.dataset],
      ["fidelity", r.fidelity || "—"],
      ["trace", r.trace_tokens == null ? "—" : `${r.trace_tokens} tokens, ${r.trace_finish}`],
      ["tokens in / out", `${fmt.count(r.input_tokens)} / ${fmt.count(r.output_tokens)}`],
      ["spend", fmt.usd(r.usd)],
      ["calls", `${r.calls} (${r.retries} retries)`],
      ["failed attempts", String(r.failed_attempts), "failed-attempts"],
    ]),
    h("h2", {}, "Problem"),
    statement ? h("div", { class: "trace", id: "statement" }, statement) : h("div", { class: "note-box missing" }, `The problem's text is not available: ${d.problem_missing}.`),
    h("p", {}, "Gold answer: ", h("span", { class: "gold", id: "gold" }, (t && t.gold) || (d.problem && d.problem.gold) || "—")),
    t && t.messages && t.messages.length ? [h("h2", {}, "Prompt"), messages(t.messages)] : null,
    h("h2", {}, "Answers at each budget"),
    answersTable(d),
    h("h2", {}, "Trace, cut at every budget"),
    t ? [t.reasoning ? [h("h3", {}, "Reasoning"), traceText(t.reasoning, t.cuts, "reasoning", grades)] : null, t.content ? [h("h3", {}, "Content"), traceText(t.content, t.cuts, "content", grades)] : null] : h("div", { class: "note-box missing", id: "transcript-missing" }, d.transcript_missing),
    h("h2", {}, "Calls and attempts"),
    callsTable(d.calls),
    d.siblings.length ? [h("h2", {}, "Other traces of this problem"), h("table", {}, h("tbody", {}, d.siblings.map((s) => h("tr", {}, h("td", {}, h("a", { href: `#/run/${id}/job/${s.job_id}` }, `${s.model} · ${s.method} · sample ${s.sample}`)), h("td", {}, s.cuts.map((c) => [mark(c.score, `${c.budget == null ? "full" : c.budget}`), " "]))))))] : null,
  );
}

async function jobPage(serial, runId, jobId) {
  const d = await api(`/api/runs/${encodeURIComponent(runId)}/jobs/${encodeURIComponent(jobId)}`);
  if (serial === routeSerial) renderJob(runId, d);
}

// ---- two runs compared ------------------------------------------------------------------------

function compareForm(runs, params, cellsA, cellsB) {
  const options = runs.filter((r) => !r.error).map((r) => [r.id, r.name === r.id ? r.id : `${r.id} (${r.name})`]);
  const cellOptions = (cells) => [["", "matching cells"], ...cells.map((c) => [c, c])];
  const form = h(
    "form",
    { class: "filters", id: "compare-form" },
    h("fieldset", {}, h("legend", {}, "A"), select("a", options, params.get("a")), " ", select("a_cell", cellOptions(cellsA), params.get("a_cell"))),
    h("fieldset", {}, h("legend", {}, "B"), select("b", options, params.get("b")), " ", select("b_cell", cellOptions(cellsB), params.get("b_cell"))),
    h("div", {}, h("button", { type: "submit" }, "Compare")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/compare${query(Object.fromEntries(new FormData(form).entries()))}`;
  });
  return form;
}

function pairSection(d, p, index) {
  const a = `${d.a.id}: ${p.a[0]} · ${p.a[2]}`;
  const b = `${d.b.id}: ${p.b[0]} · ${p.b[2]}`;
  const link = (runId, job, text) => h("a", { href: `#/run/${encodeURIComponent(runId)}/job/${job}` }, text);
  const excludesZero = (iv) => iv.lo != null && iv.hi != null && (iv.lo > 0 || iv.hi < 0);
  return h(
    "section",
    { class: "pair", dataset: { pair: index } },
    h("h2", {}, `A ${a}  vs  B ${b} (${p.a[1]})`),
    facts([
      ["paired problems", String(p.problems), `paired-${index}`],
      ["only in A / only in B", `${p.only_a} / ${p.only_b}`],
      ["Anytime Index A − B", p.anytime_index ? `${fmt.signed(p.anytime_index.value)} ${fmt.ci(p.anytime_index)}` : "—", `ai-gap-${index}`],
      ["problems that changed", String(p.changed.length)],
    ]),
    h(
      "div",
      { class: "pair-grid" },
      h(
      "table",
      { class: "gaps" },
      h("thead", {}, h("tr", {}, ["budget", "Q A", "Q B", "A − B", "95% paired CI"].map((x) => h("th", { class: "num" }, x)))),
      h(
        "tbody",
        {},
        p.gaps.map((g) =>
          h(
            "tr",
            { dataset: { budget: g.budget } },
            h("td", { class: "num" }, fmt.budget(g.budget)),
            h("td", { class: "num" }, fmt.q(g.a)),
            h("td", { class: "num" }, fmt.q(g.b)),
            h("td", { class: `num${excludesZero(g.difference) ? " significant" : ""}` }, fmt.signed(100 * g.difference.value)),
            h("td", { class: "num ci" }, fmt.ci(g.difference, 100) || "—"),
          ),
        ),
      ),
    ),
    Charts.diffChart({
      title: "A − B at each budget (quality ×100), 95% paired bootstrap intervals",
      cell: `${p.a.join("/")}|${p.b.join("/")}`,
      xFormat: fmt.budget,
      xTicks: p.budgets,
      xLabel: "reasoning budget (tokens, log scale)",
      yLabel: "difference ×100",
      points: p.gaps.map((g) => ({ x: g.budget, y: 100 * g.difference.value, lo: g.difference.lo == null ? null : 100 * g.difference.lo, hi: g.difference.hi == null ? null : 100 * g.difference.hi, tip: `${g.budget}: ${fmt.signed(100 * g.difference.value)} ${fmt.ci(g.difference, 100)}` })),
      className: "chart-diff",
    }),
    ),
    h("h3", {}, `Problems that changed (${p.changed.length})`),
    p.changed.length
      ? h(
          "div",
          { class: "table-scroll" },
          h(
            "table",
            { class: "changed" },
            h("thead", {}, h("tr", {}, h("th", {}, "problem"), p.budgets.map((bud) => h("th", { class: "num" }, `${fmt.budget(bud)} A / B`)), h("th", {}, "traces in A"), h("th", {}, "traces in B"))),
            h(
              "tbody",
              {},
              p.changed.map((c) =>
                h(
                  "tr",
                  { dataset: { problem: c.problem_id } },
                  h("td", {}, c.problem_id),
                  p.budgets.map((bud, i) => h("td", { class: "num" }, mark(c.a[i]), " ", mark(c.b[i]))),
                  h("td", {}, c.jobs_a.map((j, i) => [link(d.a.id, j, `s${i}`), " "])),
                  h("td", {}, c.jobs_b.map((j, i) => [link(d.b.id, j, `s${i}`), " "])),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No problem's grade changed."),
  );
}

async function comparePage(serial, params) {
  const list = await api("/api/runs");
  const ok = list.runs.filter((r) => !r.error);
  if (!params.get("a") && ok.length) params.set("a", ok[0].id);
  if (!params.get("b") && ok.length) params.set("b", (ok[1] || ok[0]).id);
  const cellsOf = (id) => ((ok.find((r) => r.id === id) || { cells: [] }).cells || []).map(cellKey);
  const form = compareForm(list.runs, params, cellsOf(params.get("a")), cellsOf(params.get("b")));
  put(h("h1", {}, "Compare"), h("p", { class: "muted" }, "Two runs, or two cells of one run, paired by problem: differences per budget with paired bootstrap intervals, and the problems whose grade changed."), form, h("p", { class: "muted" }, "Comparing…"));
  if (!ok.length) return;
  const d = await api(`/api/compare${query(Object.fromEntries(params.entries()))}`);
  if (serial !== routeSerial) return;
  put(
    h("h1", {}, "Compare"),
    h("p", { class: "muted" }, "Two runs, or two cells of one run, paired by problem: differences per budget (A − B, quality ×100) with 95% paired bootstrap intervals (bold: the interval leaves out 0), and the problems whose grade changed."),
    form,
    d.pairs.length ? d.pairs.map((p, i) => pairSection(d, p, i)) : h("div", { class: "note-box missing" }, "These runs have no cell in common: pick a cell in A and one in B."),
  );
}

// ---- routing ----------------------------------------------------------------------------------

async function route() {
  routeSerial += 1;
  const serial = routeSerial;
  clearTimeout(pollTimer);
  setLive("");
  banner.hidden = true;
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search] = raw.split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  document.getElementById("nav-runs").classList.toggle("active", parts[0] !== "compare");
  document.getElementById("nav-compare").classList.toggle("active", parts[0] === "compare");
  try {
    if (!parts.length) await runsPage(serial);
    else if (parts[0] === "run" && parts.length === 2) await runPage(serial, parts[1]);
    else if (parts[0] === "run" && parts[2] === "problems") await problemsPage(serial, parts[1], params);
    else if (parts[0] === "run" && parts[2] === "job" && parts[3]) await jobPage(serial, parts[1], parts[3]);
    else if (parts[0] === "compare") await comparePage(serial, params);
    else showError(`There is no page at #${raw}.`);
  } catch (err) {
    if (serial === routeSerial) showError(err.message);
  }
  // the page for this address is drawn (tests wait on it; a later live refresh redraws in place)
  if (serial === routeSerial) view.dataset.loaded = location.hash;
}

window.addEventListener("hashchange", route);
route();
