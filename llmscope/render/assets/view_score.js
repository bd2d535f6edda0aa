// score: the text, each token coloured by the probability the model gave it (GLTR-style); totals.
// --top N (LS.extra.options.top, as in the terminal): rows of the most-surprising table and of the
// disagreements; 0 hides them.
LS.scoreTop = function () {
  const top = (LS.extra.options || {}).top;
  return top === undefined || top === null ? 10 : Number(top);
};

LS.views.score = function (doc, root) {
  if (!doc.tokens && doc.models) return LS.views.scoreComparison(doc, root);
  const s = LS.section(root, "score", "How likely the model found each token");
  LS.warnings(s, doc);
  s.append(LS.el("p", { class: "note", text: `${Number(doc.num_tokens).toLocaleString("en")} tokens` +
    (doc.dtype ? `, ${doc.dtype}` : "") }));
  // a log scale: a surprise at 1e-4 and one at 1e-2 look different (GLTR buckets ranks the same way)
  const shade = (p) => (p === null ? null : Math.max(0, 1 + Math.log10(Math.max(p, 1e-12)) / 4));
  s.append(LS.legend("probability of the token given the text before it (log scale)", "\u22640.01%", "100%"));
  const line = LS.el("div", { class: "text", id: "score-text" });
  (doc.tokens || []).forEach((t, i) => {
    const p = t.logprob === null || t.logprob === undefined ? null : Math.exp(t.logprob);
    const top = t.top ? `; model's top choice ${LS.quote(t.top.token)} ${LS.pct(t.top.prob)}` : "";
    line.append(LS.token(t.token, shade(p), { "data-i": i,
      title: p === null ? `#${i} ${LS.quote(t.token)} id ${t.id}: first token, not scored`
        : `#${i} ${LS.quote(t.token)} id ${t.id}: p=${LS.pct(p)} (log-prob ${t.logprob.toFixed(3)}), rank ${t.rank}${top}` }));
  });
  s.append(line);
  const n = LS.scoreTop();
  if (n > 0) {
    const worst = (doc.tokens || []).map((t, i) => [t, i]).filter(([t]) => t.logprob !== null && t.logprob !== undefined)
      .sort((a, b) => a[0].logprob - b[0].logprob).slice(0, n);
    const table = LS.table(["pos", "token", "probability", "bits", "rank", "model expected", "its probability"],
      worst.map(([t, i]) => [
        i, LS.vis(t.token) || "\u2205", LS.pct(Math.exp(t.logprob)), (-t.logprob / Math.LN2).toFixed(2),
        Number(t.rank).toLocaleString("en"), t.top ? LS.vis(t.top.token) : "-", t.top ? LS.pct(t.top.prob) : "-",
      ]), [0, 2, 3, 4, 6]);
    table.id = "surprising";
    s.append(LS.el("h3", { text: `Most surprising tokens (top ${n})` }), table);
  }
  const passes = doc.windows === 1 ? "1 forward pass"
    : `${Number(doc.windows).toLocaleString("en")} windows, every ${Number(doc.stride).toLocaleString("en")} tokens`;
  const totals = LS.table(["", ""], [
    ["tokens", `${Number(doc.num_tokens).toLocaleString("en")} (${Number(doc.scored).toLocaleString("en")} scored; the first has no score)`],
    ["window", `${Number(doc.window).toLocaleString("en")} tokens, ${passes}`],
    ["mean NLL", `${LS.num(doc.mean_nll, 4)} nats per token`],
    ["perplexity", LS.num(doc.perplexity, 4)],
    ["bits per byte", `${LS.num(doc.bits_per_byte, 4)} (${Number(doc.bytes).toLocaleString("en")} UTF-8 bytes)`],
  ]);
  totals.id = "score-totals";
  totals.querySelector("thead").remove();
  s.append(LS.el("h3", { text: "Totals" }), totals);
};

// score --compare-model: the totals side by side, the words they disagree on, then each model's tokens.
LS.views.scoreComparison = function (doc, root) {
  const s = LS.section(root, "score", `The same text under ${doc.models.length} models`);
  const best = Math.min(...doc.models.map((d) => d.bits_per_byte));
  const models = LS.table(["model", "tokens", "scored", "mean NLL (nats)", "perplexity", "bits per byte"],
    doc.models.map((d) => [d.model, d.num_tokens, d.scored, LS.num(d.mean_nll, 4), LS.num(d.perplexity, 3),
      LS.el("span", { class: d.bits_per_byte === best ? "kept" : null, text: LS.num(d.bits_per_byte, 4) })]), [1, 2, 3, 4, 5]);
  s.append(models);
  const n = LS.scoreTop();
  if (n > 0 && (doc.disagreements || []).length) {
    const table = LS.table(["text", ...doc.models.map((d) => d.model), "spread"], doc.disagreements.slice(0, n).map((x) =>
      [LS.vis(String(x.text).trim()) || "\u2205", ...x.bits.map((b) => LS.num(b, 2)), LS.num(x.spread, 2)]),
      [...doc.models.map((_, i) => i + 1), doc.models.length + 1]);
    table.id = "disagreements";
    s.append(LS.el("h3", { text: `Where they disagree most (bits per word, top ${n})` }), table);
  } else if (n > 0) {
    s.append(LS.el("p", { class: "note", text: "No disagreement spans: a tokenizer gives no character offsets." }));
  }
  s.append(LS.el("p", { class: "note", text: "Perplexity depends on the tokenizer; compare models by bits per byte." }));
  doc.models.forEach((d, i) => {
    const sub = LS.el("section", { id: `score-model-${i}` });
    s.append(sub);
    LS.views.score(d, sub);
    sub.querySelector("h2").textContent = d.model;
    sub.querySelector("[id=score]").removeAttribute("id");
    for (const id of ["surprising", "score-totals", "score-text"]) {
      const node = sub.querySelector(`#${id}`);
      if (node) node.removeAttribute("id");
    }
  });
};
