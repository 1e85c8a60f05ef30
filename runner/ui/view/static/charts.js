// anytime view: small SVG charts (lines with 95% bands, points, error bars), no library.
// Every chart is plain SVG with classes the tests look for: .series[data-cell], .band, .line,
// .point[data-budget], .errorbar.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2557a7", "#d1495b", "#2a9d8f", "#e9a23b", "#6a4c93", "#3d405b", "#8ab17d", "#c65d1e"];

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const t = el("text", Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = content;
    return t;
  }

  // ticks at round numbers covering [lo, hi]
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  function scale(domain, range, log) {
    const f = log ? (v) => Math.log2(v) : (v) => v;
    const [d0, d1] = [f(domain[0]), f(domain[1])];
    const span = d1 - d0 || 1;
    return (v) => range[0] + ((f(v) - d0) / span) * (range[1] - range[0]);
  }

  function frame(opts) {
    const width = opts.width || 560;
    const height = opts.height || 320;
    const m = { top: 14, right: 18, bottom: 44, left: 52 };
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": opts.title || "chart" });
    return { svg, width, height, m, plotW: width - m.left - m.right, plotH: height - m.top - m.bottom };
  }

  function xDomain(values, log) {
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (log) return lo === hi ? [lo / 2, hi * 2] : [lo / Math.pow(2, 0.25), hi * Math.pow(2, 0.25)];
    if (lo === hi) return [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.05;
    return [Math.max(0, lo - pad), hi + pad];
  }

  function axes(f, x, y, opts, xTicks, yTicks) {
    const grid = el("g", { class: "grid" }, f.svg);
    const axis = el("g", { class: "axis" }, f.svg);
    const bottom = f.m.top + f.plotH;
    for (const t of yTicks) {
      el("line", { x1: f.m.left, x2: f.m.left + f.plotW, y1: y(t), y2: y(t) }, grid);
      text(axis, f.m.left - 6, y(t) + 4, opts.yFormat ? opts.yFormat(t) : String(t), { "text-anchor": "end" });
    }
    for (const t of xTicks) {
      el("line", { x1: x(t), x2: x(t), y1: f.m.top, y2: bottom }, grid);
      text(axis, x(t), bottom + 16, opts.xFormat ? opts.xFormat(t) : String(t), { "text-anchor": "middle" });
    }
    el("line", { x1: f.m.left, x2: f.m.left + f.plotW, y1: bottom, y2: bottom }, axis);
    el("line", { x1: f.m.left, x2: f.m.left, y1: f.m.top, y2: bottom }, axis);
    if (opts.xLabel) text(axis, f.m.left + f.plotW / 2, f.height - 6, opts.xLabel, { "text-anchor": "middle" });
    if (opts.yLabel) {
      text(axis, 12, f.m.top + f.plotH / 2, opts.yLabel, {
        "text-anchor": "middle",
        transform: `rotate(-90 12 ${f.m.top + f.plotH / 2})`,
      });
    }
  }

  function pathOf(points) {
    return points.map((p, i) => `${i ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ");
  }

  function legend(series) {
    const box = document.createElement("div");
    box.className = "legend";
    for (const s of series) {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch" + (s.dashed ? " dashed" : "");
      swatch.style.background = s.color;
      swatch.style.color = s.color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.label));
      box.appendChild(item);
    }
    return box;
  }

  function wrap(title, svg, series, extraClass) {
    const box = document.createElement("div");
    box.className = "chart" + (extraClass ? " " + extraClass : "");
    const h = document.createElement("h4");
    h.textContent = title;
    box.appendChild(h);
    box.appendChild(svg);
    if (series && series.length) box.appendChild(legend(series));
    return box;
  }

  // series: [{label, color, cell, dashed, band, points: [{x, y, lo, hi, budget, tip}]}]
  function lineChart(opts) {
    const f = frame(opts);
    const all = opts.series.flatMap((s) => s.points).filter((p) => p.x != null && p.y != null);
    if (!all.length) {
      text(f.svg, f.width / 2, f.height / 2, "no data yet", { "text-anchor": "middle" });
      return wrap(opts.title, f.svg, [], opts.className);
    }
    const xd = xDomain(all.map((p) => p.x), opts.xLog);
    const yd = [opts.yMin ?? 0, opts.yMax ?? Math.max(...all.map((p) => p.hi ?? p.y)) * 1.05];
    const x = scale(xd, [f.m.left, f.m.left + f.plotW], opts.xLog);
    const y = scale(yd, [f.m.top + f.plotH, f.m.top], false);
    const xTicks = opts.xTicks || niceTicks(xd[0], xd[1], 5);
    axes(f, x, y, opts, xTicks, niceTicks(yd[0], yd[1], 5));
    for (const s of opts.series) {
      const g = el("g", { class: "series", "data-cell": s.cell || s.label }, f.svg);
      const pts = s.points.filter((p) => p.x != null && p.y != null);
      const banded = pts.filter((p) => p.lo != null && p.hi != null);
      if (s.band && banded.length) {
        const upper = banded.map((p) => [x(p.x), y(p.hi)]);
        const lower = banded.map((p) => [x(p.x), y(p.lo)]).reverse();
        el("path", { class: "band", d: pathOf(upper.concat(lower)) + " Z", fill: s.color, "fill-opacity": 0.14, stroke: "none" }, g);
      }
      el("path", {
        class: "line",
        d: pathOf(pts.map((p) => [x(p.x), y(p.y)])),
        fill: "none",
        stroke: s.color,
        "stroke-width": 2,
        "stroke-dasharray": s.dashed ? "6 4" : "none",
      }, g);
      for (const p of pts) {
        const c = el("circle", { class: "point", cx: x(p.x), cy: y(p.y), r: 3.6, fill: s.color, "data-budget": p.budget ?? p.x }, g);
        if (p.tip) el("title", {}, c).textContent = p.tip;
      }
    }
    return wrap(opts.title, f.svg, opts.series, opts.className);
  }

  // differences B − A at each budget with their intervals, around a zero line
  // points: [{x (budget), y, lo, hi, tip}]
  function diffChart(opts) {
    const f = frame(opts);
    const pts = opts.points.filter((p) => p.y != null);
    if (!pts.length) {
      text(f.svg, f.width / 2, f.height / 2, "nothing to compare", { "text-anchor": "middle" });
      return wrap(opts.title, f.svg, [], opts.className);
    }
    const ext = Math.max(5, ...pts.map((p) => Math.max(Math.abs(p.lo ?? p.y), Math.abs(p.hi ?? p.y)))) * 1.1;
    const xd = xDomain(pts.map((p) => p.x), true);
    const x = scale(xd, [f.m.left, f.m.left + f.plotW], true);
    const y = scale([-ext, ext], [f.m.top + f.plotH, f.m.top], false);
    axes(f, x, y, opts, opts.xTicks || pts.map((p) => p.x), niceTicks(-ext, ext, 6));
    el("line", { class: "zero", x1: f.m.left, x2: f.m.left + f.plotW, y1: y(0), y2: y(0), stroke: "#1d2330", "stroke-dasharray": "3 3" }, f.svg);
    const g = el("g", { class: "series", "data-cell": opts.cell || "difference" }, f.svg);
    for (const p of pts) {
      if (p.lo != null && p.hi != null) {
        el("line", { class: "errorbar", x1: x(p.x), x2: x(p.x), y1: y(p.lo), y2: y(p.hi), stroke: opts.color || PALETTE[0], "stroke-width": 2 }, g);
      }
      const c = el("circle", { class: "point", cx: x(p.x), cy: y(p.y), r: 4, fill: opts.color || PALETTE[0], "data-budget": p.x }, g);
      if (p.tip) el("title", {}, c).textContent = p.tip;
    }
    return wrap(opts.title, f.svg, [], opts.className);
  }

  return { lineChart, diffChart, niceTicks, PALETTE };
})();
