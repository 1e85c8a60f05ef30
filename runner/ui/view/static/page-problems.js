// anytime view: the problems table: filters, sorting, one row per trace
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

// ---- the problems table -----------------------------------------------------------------------

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
  const tip = (c) => (c ? `answer ${c.answer || "(none)"} · ${c.tokens} tokens in the cut · ${fmt.usd(c.usd_at_budget)} to answer here` : null);
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
