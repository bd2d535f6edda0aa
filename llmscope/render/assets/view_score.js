// score: the text, each token coloured by the probability the model gave it (GLTR-style); totals.
LS.views.score = function (doc, root) {
  if (!doc.tokens && doc.models) return LS.views.scoreComparison(doc, root);
  const s = LS.section(root, "score", "How likely the model found each token");
  LS.warnings(s, doc);
  // a log scale: a surprise at 1e-4 and one at 1e-2 look different (GLTR buckets ranks the same way)
  const shade = (p) => (p === null ? null : Math.max(0, 1 + Math.log10(Math.max(p, 1e-12)) / 4));
  s.append(LS.legend("probability of the token given the text before it (log scale)", "\u22640.01%", "100%"));
  const line = LS.el("div", { class: "text", id: "score-text" });
  (doc.tokens || []).forEach((t, i) => {
    const p = t.logprob === null || t.logprob === undefined ? null : Math.exp(t.logprob);
    const top = t.top ? `; model's top choice ${JSON.stringify(t.top.token)} ${LS.pct(t.top.prob)}` : "";
    line.append(LS.token(t.token, shade(p), { "data-i": i,
      title: p === null ? `#${i} ${JSON.stringify(t.token)} id ${t.id}: first token, not scored`
        : `#${i} ${JSON.stringify(t.token)} id ${t.id}: p=${LS.pct(p)} (log-prob ${t.logprob.toFixed(3)}), rank ${t.rank}${top}` }));
  });
  s.append(line);
  const totals = (d) => [d.model, d.num_tokens, d.scored, LS.num(d.mean_nll, 4), LS.num(d.perplexity, 3), LS.num(d.bits_per_byte, 4)];
  const models = doc.models && doc.models.length ? doc.models : [doc];
  s.append(LS.el("h3", { text: "Totals" }),
    LS.table(["model", "tokens", "scored", "mean NLL (nats)", "perplexity", "bits per byte"], models.map(totals), [1, 2, 3, 4, 5]));
  const worst = (doc.tokens || []).map((t, i) => [t, i]).filter(([t]) => t.logprob !== null && t.logprob !== undefined)
    .sort((a, b) => a[0].logprob - b[0].logprob).slice(0, 10);
  s.append(LS.el("h3", { text: "Most surprising tokens" }),
    LS.table(["#", "token", "probability", "rank", "model's choice"], worst.map(([t, i]) => [
      i, LS.vis(t.token), LS.pct(Math.exp(t.logprob)), t.rank, t.top ? `${LS.vis(t.top.token)} ${LS.pct(t.top.prob)}` : "-",
    ]), [0, 2, 3]));
};

// score --compare-model: each model's tokens, the totals side by side, the words they disagree on.
LS.views.scoreComparison = function (doc, root) {
  const s = LS.section(root, "score", `The same text under ${doc.models.length} models`);
  s.append(LS.table(["model", "tokens", "scored", "mean NLL (nats)", "perplexity", "bits per byte"],
    doc.models.map((d) => [d.model, d.num_tokens, d.scored, LS.num(d.mean_nll, 4), LS.num(d.perplexity, 3),
      LS.num(d.bits_per_byte, 4)]), [1, 2, 3, 4, 5]));
  if ((doc.disagreements || []).length) {
    s.append(LS.el("h3", { text: "Where they disagree most (bits for the word)" }),
      LS.table(["text", ...doc.models.map((d) => d.model), "spread"], doc.disagreements.map((x) =>
        [LS.vis(x.text), ...x.bits.map((b) => LS.num(b, 2)), LS.num(x.spread, 2)]), doc.models.map((_, i) => i + 1)));
  }
  doc.models.forEach((d, i) => {
    const sub = LS.el("section", { id: `score-model-${i}` });
    s.append(sub);
    LS.views.score(d, sub);
    sub.querySelector("h2").textContent = d.model;
    sub.querySelector("[id=score]").removeAttribute("id");
  });
};
