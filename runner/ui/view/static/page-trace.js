// anytime view: one trace: its problem, prompt, answers per budget, the trace with its cut markers, calls
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

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
    h("thead", {}, h("tr", {}, ["budget", "tokens in the cut", "forced answer", "extracted answer", "grade", "gold", "$ at this budget"].map((x) => h("th", {}, x)))),
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
          h("td", { class: "num" }, fmt.usd(c.usd_at_budget)),
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

function reusedTable(reused) {
  const head = ["call", "kind", "budget", "how", "from run", "its call", "cost there", "not spent here"];
  const rows = reused.map((r) =>
    h(
      "tr",
      {},
      h("td", { class: "mono small" }, r.call_id),
      h("td", {}, r.kind),
      h("td", { class: "num" }, r.budget == null ? "—" : fmt.budget(r.budget)),
      h("td", { title: r.reason || "" }, r.mode),
      h("td", { class: "small" }, r.source_run.split("/").pop()),
      h("td", { class: "mono small" }, r.source_call_id),
      h("td", { class: "num" }, fmt.usd(r.source_usd)),
      h("td", { class: "num" }, fmt.usd(r.usd)),
    ),
  );
  return h("div", { class: "table-scroll" }, h("table", { id: "reused-table" }, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))), h("tbody", {}, rows)));
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
    d.reused && d.reused.length ? [h("h2", {}, "Reused calls"), h("p", { class: "muted small" }, "served: taken from a call a run paid for (the same request), its cost left in that run's spend; continued: a stored trace went on past its end (the continuation is above); requested: a stored trace could not serve (hover for why), and was paid again."), reusedTable(d.reused)] : null,
    d.siblings.length ? [h("h2", {}, "Other traces of this problem"), h("table", {}, h("tbody", {}, d.siblings.map((s) => h("tr", {}, h("td", {}, h("a", { href: `#/run/${id}/job/${s.job_id}` }, `${s.model} · ${s.method} · sample ${s.sample}`)), h("td", {}, s.cuts.map((c) => [mark(c.score, `${c.budget == null ? "full" : c.budget}`), " "]))))))] : null,
  );
}

async function jobPage(serial, runId, jobId) {
  const d = await api(`/api/runs/${encodeURIComponent(runId)}/jobs/${encodeURIComponent(jobId)}`);
  if (serial === routeSerial) renderJob(runId, d);
}
