// anytime view: the runs of the ledger folder
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

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
