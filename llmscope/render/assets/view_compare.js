// compare: one row per strategy, the same prompt, each token coloured by its probability.
LS.views.compare = function (doc, root) {
  const s = LS.section(root, "compare", `${(doc.results || []).length} strategies`);
  s.append(LS.el("p", { class: "text" }, LS.el("span", { class: "muted", text: doc.prompt || "" })));
  s.append(LS.legend("probability of each token", "0", "1"));
  for (const r of doc.results || []) {
    s.append(LS.el("h3", { text: r.label || r.strategy }), LS.generationText(r, false), LS.generationStats(r));
  }
};
