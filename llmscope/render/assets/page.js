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
  // A token as the page draws it: whitespace made visible, as the terminal views do, and every character
  // the page cannot draw as itself escaped (\x07, \ue000, \U0001f600), never an empty box.
  vis(text) { return LS.units(text).join(""); },
  // the same, cut to n characters (an escape counts as one and is never cut)
  short(text, n) { const u = LS.units(text); return u.length > n ? u.slice(0, n - 1).join("") + "\u2026" : u.join(""); },
  // the characters of vis(text), one string each
  units(text) {
    const out = [];
    for (const ch of String(text ?? "")) {
      const shown = LS._whitespace[ch];
      out.push(shown !== undefined ? shown : LS.drawable(ch) ? ch : LS.escape(ch));
    }
    return out;
  },
  // the JSON string of a token, and its escaped form where that differs (for titles and the info bar)
  quote(text) {
    const raw = JSON.stringify(String(text ?? "")), shown = LS.vis(text);
    return shown === LS._spaced(text) ? raw : `${raw} (${shown})`;
  },
  _spaced(text) { return Array.from(String(text ?? "")).map((ch) => LS._whitespace[ch] ?? ch).join(""); },
  _whitespace: { " ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d" },
  escape(ch) {
    const c = ch.codePointAt(0);
    if (c < 0x100) return "\\x" + c.toString(16).padStart(2, "0");
    if (c < 0x10000) return "\\u" + c.toString(16).padStart(4, "0");
    return "\\U" + c.toString(16).padStart(8, "0");
  },
  // Can the page draw this character? Never: control, format, private-use, unassigned and surrogate code
  // points, line and paragraph separators. Otherwise it draws where an installed font has the glyph:
  // drawn on a canvas after a base letter (so that a lone combining mark is tested too), a character no
  // font has gives exactly the pixels of a code point no font can have (U+10FFFF: the font's empty box).
  // Measuring widths cannot tell: in a monospace font the box is as wide as a letter.
  _drawable: new Map(),
  _never: /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}]/u,
  drawable(ch) {
    const c = ch.codePointAt(0);
    if (c >= 0x20 && c < 0x7f) return true;
    let known = LS._drawable.get(ch);
    if (known === undefined) {
      if (LS._never.test(ch)) known = false;
      else {
        const drawn = LS._probe("o" + ch);
        known = drawn === null || drawn !== LS._probe("o\u{10FFFF}");
      }
      LS._drawable.set(ch, known);
    }
    return known;
  },
  _canvas: null,
  _pixels: new Map(),
  _probe(text) {
    if (LS._pixels.has(text)) return LS._pixels.get(text);
    const canvas = LS._canvas || (LS._canvas = document.createElement("canvas"));
    canvas.width = 96; canvas.height = 40;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    if (!g) return null;  // no canvas: every other character is taken as drawable
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.font = '24px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
    g.textBaseline = "middle";
    g.fillStyle = "#000";
    g.fillText(text, 4, 20);
    const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let key = "";
    for (let i = 3; i < data.length; i += 4) key += String.fromCharCode(data[i]);  // the alpha channel
    LS._pixels.set(text, key);
    return key;
  },
  // the terminal's one probability format (llmscope.units.fmt_prob): 41.2%, 3.07%, 0.095%, <0.001%, 0%
  pct(p) {
    if (p === null || p === undefined) return "-";
    if (p === 0) return "0%";
    const percent = 100 * p;
    if (percent >= 9.95) return percent.toFixed(1) + "%";
    if (percent >= 0.0995) return percent.toFixed(2) + "%";
    if (percent >= 0.0005) return percent.toFixed(3) + "%";
    return "<0.001%";
  },
  // binary units as the terminal writes them (llmscope.units.fmt_bytes): 1,023 B, 22.00 KiB
  bytes(n) {
    if (n === null || n === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let x = Number(n), i = 0;
    while (Math.abs(x) >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
    const d = i === 0 ? 0 : 2;
    return `${x.toLocaleString("en", { minimumFractionDigits: d, maximumFractionDigits: d })} ${units[i]}`;
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
  // a diverging scale for signed values in [-1, 1] (ColorBrewer RdBu, 7 stops): blue below 0, red above,
  // near-white at 0, so that 0.3 and 0.6 look apart; signedInk is the text colour that stays readable on it
  _rdbu: [[33,102,172],[103,169,207],[209,229,240],[247,247,247],[253,219,199],[239,138,98],[178,24,43]],
  _signedRgb(v) {
    v = Math.max(-1, Math.min(1, Number(v) || 0));
    const s = LS._rdbu, x = (v + 1) / 2 * (s.length - 1), i = Math.min(Math.floor(x), s.length - 2), f = x - i;
    return s[i].map((c, j) => Math.round(c + f * (s[i + 1][j] - c)));
  },
  signed(v) { const c = LS._signedRgb(v); return `rgb(${c[0]},${c[1]},${c[2]})`; },
  signedInk(v) {
    const lum = LS._signedRgb(v).map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] > 0.18 ? "#111" : "#fff";
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
  // what the terminal view shows beyond the --json document (page.py's view_extra), {} where nothing
  extra: {},
  start() {
    LS.data = JSON.parse(document.getElementById("llmscope-data").textContent);
    const extra = document.getElementById("llmscope-view");
    LS.extra = extra ? JSON.parse(extra.textContent) : {};
    const view = document.body.dataset.view;
    LS.header(LS.data, view.replace(/_/g, "-"));
    LS.views[view](LS.data, document.getElementById("app"));
  },
};
