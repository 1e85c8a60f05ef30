// anytime view: the helpers every page uses: elements, the API, number formats, marks, live polling
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
