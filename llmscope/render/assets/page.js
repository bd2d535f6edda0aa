// llmscope page runtime: data, DOM helpers, colours, theme. Each view_*.js registers LS.views[name].
"use strict";
const LS = {
  views: {},
  data: null,
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  },
  // whitespace made visible, as the terminal views do
  vis(text) {
    return String(text ?? "").replace(/ /g, "\u00b7").replace(/\n/g, "\u21b5").replace(/\t/g, "\u2192").replace(/\r/g, "\u240d");
  },
  short(text, n) { const t = LS.vis(text); return t.length > n ? t.slice(0, n - 1) + "\u2026" : t; },
  pct(p) {
    if (p === null || p === undefined) return "-";
    if (p >= 0.0995) return (100 * p).toFixed(1) + "%";
    if (p >= 0.000995) return (100 * p).toFixed(2) + "%";
    if (p > 0) return (100 * p).toPrecision(2) + "%";
    return "0%";
  },
  num(x, d) { return x === null || x === undefined ? "-" : Number(x).toFixed(d); },
  // viridis, sampled at 9 stops: perceptually uniform and colour-blind safe
  _viridis: [[68,1,84],[72,40,120],[62,73,137],[49,104,142],[38,130,142],[31,158,137],[53,183,121],[109,205,89],[180,222,44],[253,231,37]],
  color(t) {
    t = Math.max(0, Math.min(1, Number(t) || 0));
    const s = LS._viridis, x = t * (s.length - 1), i = Math.min(Math.floor(x), s.length - 2), f = x - i;
    const c = s[i].map((v, j) => Math.round(v + f * (s[i + 1][j] - v)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  },
  ink(t) { return (Number(t) || 0) > 0.55 ? "#111" : "#fff"; },
  // a diverging scale for signed values in [-1, 1]: blue below 0, red above, neutral grey at 0
  signed(v) {
    v = Math.max(-1, Math.min(1, Number(v) || 0));
    const a = Math.abs(v), base = [128, 128, 128], end = v < 0 ? [33, 102, 172] : [178, 24, 43];
    const c = base.map((b, j) => Math.round(b + a * (end[j] - b)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  },
  legend(label, lo, hi, ramp) {
    const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => (ramp || LS.color)(ramp ? 2 * t - 1 : t)).join(",");
    return LS.el("div", { class: "legend" }, label, " ", lo,
      LS.el("span", { class: "ramp", style: { background: `linear-gradient(90deg,${stops})` } }), hi);
  },
  info(text) { document.getElementById("hover-info").textContent = text; },
  section(parent, id, title, ...children) {
    const s = LS.el("section", { id }, title ? LS.el("h2", { text: title }) : null, ...children);
    parent.append(s);
    return s;
  },
  table(headers, rows, numeric) {
    const num = new Set(numeric || []);
    return LS.el("table", { class: "data" },
      LS.el("thead", {}, LS.el("tr", {}, headers.map((h, i) => LS.el("th", { class: num.has(i) ? "num" : null, text: h })))),
      LS.el("tbody", {}, rows.map((r) => LS.el("tr", {}, r.map((c, i) =>
        c instanceof Node ? LS.el("td", {}, c) : LS.el("td", { class: num.has(i) ? "num" : null, text: c }))))));
  },
  // a token as a coloured span; t in [0, 1] picks the colour, null keeps the plain background
  token(text, t, attrs) {
    const span = LS.el("span", Object.assign({ class: "tok", tabindex: "0" }, attrs || {}), LS.vis(text));
    if (t !== null && t !== undefined) { span.style.background = LS.color(t); span.style.color = LS.ink(t); }
    span.addEventListener("mouseenter", () => LS.info(span.title || ""));
    span.addEventListener("focus", () => LS.info(span.title || ""));
    return span;
  },
  warnings(parent, doc) {
    for (const w of doc.warnings || []) parent.append(LS.el("p", { class: "warning", text: "Warning: " + w }));
  },
  header(doc, what) {
    const top = document.getElementById("top");
    const toggle = LS.el("button", { type: "button", id: "theme", title: "Switch light/dark",
      onclick: () => {
        const dark = document.documentElement.dataset.theme
          ? document.documentElement.dataset.theme === "dark"
          : matchMedia("(prefers-color-scheme: dark)").matches;
        document.documentElement.dataset.theme = dark ? "light" : "dark";
      } }, "\u25d0 theme");
    top.append(LS.el("h1", { text: "llmscope " + what }), LS.el("span", { class: "meta", text: doc.model || "" }), toggle);
  },
  start() {
    LS.data = JSON.parse(document.getElementById("llmscope-data").textContent);
    const view = document.body.dataset.view;
    LS.header(LS.data, view.replace(/_/g, "-"));
    LS.views[view](LS.data, document.getElementById("app"));
  },
};
