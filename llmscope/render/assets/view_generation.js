// generate: the written text, each token coloured by the probability the model gave it.
LS.generationText = function (r, withPrompt) {
  const line = LS.el("div", { class: "text" });
  if (withPrompt && r.prompt && !r.chat) line.append(LS.el("span", { class: "muted", text: r.prompt }));
  (r.tokens || []).forEach((t, i) => {
    line.append(LS.token(t.text, t.prob, { "data-i": i,
      title: `token ${i + 1}: ${JSON.stringify(t.text)} id ${t.id} p=${LS.pct(t.prob)}` }));
  });
  return line;
};
LS.generationStats = function (r) {
  return LS.table(["tokens", "stop", "tokens/s", "mean log-prob", "perplexity", "distinct-2"], [[
    r.num_tokens, r.stop_reason, LS.num(r.tokens_per_second, 1), LS.num(r.mean_logprob, 3),
    LS.num(r.perplexity, 2), LS.num(r.distinct_2, 2),
  ]], [0, 2, 3, 4, 5]);
};
LS.views.generation = function (doc, root) {
  const s = LS.section(root, "generation", `Generated with ${doc.label || doc.strategy}`);
  LS.warnings(s, doc);
  s.append(LS.legend("probability of each token", "0", "1"), LS.generationText(doc, true), LS.generationStats(doc));
};
