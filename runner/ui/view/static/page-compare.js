// anytime view: two runs (or two cells) compared by problem
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

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
      ["Anytime Index B − A", p.anytime_index ? `${fmt.signed(p.anytime_index.value)} ${fmt.ci(p.anytime_index)}` : "—", `ai-gap-${index}`],
      ["problems that changed", String(p.changed.length)],
    ]),
    h(
      "div",
      { class: "pair-grid" },
      h(
      "table",
      { class: "gaps" },
      h("thead", {}, h("tr", {}, ["budget", "Q A", "Q B", "B − A", "95% paired CI"].map((x) => h("th", { class: "num" }, x)))),
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
      title: "B − A at each budget (quality ×100), 95% paired bootstrap intervals",
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
    h("p", { class: "muted" }, "Two runs, or two cells of one run, paired by problem: differences per budget (B − A, quality ×100) with 95% paired bootstrap intervals (bold: the interval leaves out 0), and the problems whose grade changed."),
    form,
    d.pairs.length ? d.pairs.map((p, i) => pairSection(d, p, i)) : h("div", { class: "note-box missing" }, "These runs have no cell in common: pick a cell in A and one in B."),
  );
}
