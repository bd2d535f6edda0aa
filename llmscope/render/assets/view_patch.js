// patch: the layer x position (or layer x head) grid of restored shares on the diverging scale (hover a cell
// for its value and raw metric), the metric's two ends and the identity checks.
LS.views.patch = function (doc, root) {
  const metric = doc.metric === "logit_diff" ? `logit(${LS.quote(doc.target)}) - logit(${LS.quote(doc.versus)})` : `log p(${LS.quote(doc.target)})`;
  const s = LS.section(root, "patch", `Which activations restore ${metric}?`);
  LS.warnings(s, doc);
  const against = doc.corrupt_prompt !== null ? `corrupt: ${LS.quote(doc.corrupt_prompt)}` : `corrupt: the clean prompt with noise on ${LS.quote(doc.noise)} (seed ${doc.seed})`;
  s.append(LS.el("p", { class: "note", text: `clean: ${LS.quote(doc.clean_prompt)}; ${against}; patching ${doc.site}; metric clean ${doc.clean.toFixed(4)}, corrupt ${doc.corrupt.toFixed(4)} (0: corrupt, 1: clean)` }));
  s.append(LS.legend("restored share", "-1", "1", LS.signed));
  const cols = doc.site === "heads" ? doc.grid[0].map((_, h) => `H${h}`) : doc.tokens.map((t) => LS.short(t, 8));
  const g = LS.el("div", { class: "grid", id: "patch-grid", style: { gridTemplateColumns: `max-content repeat(${cols.length}, 56px)` } });
  g.append(LS.el("div", { class: "cell label" }));
  for (const c of cols) g.append(LS.el("div", { class: "cell collabel", text: LS.vis(c) }));
  doc.grid.forEach((row, layer) => {
    g.append(LS.el("div", { class: "cell label", text: String(layer) }));
    row.forEach((v, j) => {
      const where = doc.site === "heads" ? `head ${j}` : `position ${j} ${LS.quote(doc.tokens[j])}`;
      const c = LS.el("div", { class: v === null ? "cell masked" : "cell hot", "data-layer": layer, "data-j": j,
        title: `layer ${layer}, ${where}: restored ${v === null ? "-" : v.toFixed(3)} (metric ${doc.raw[layer][j].toFixed(4)})` });
      if (v !== null) c.style.background = LS.signed(v);
      c.addEventListener("mouseenter", () => LS.info(c.title));
      g.append(c);
    });
  });
  s.append(g);
  const check = LS.table(["", ""], [
    ["every position patched", `gives the clean metric within ${doc.check.all.toExponential(1)}`],
    ["nothing patched", `gives the corrupt metric within ${doc.check.none.toExponential(1)}`],
  ]);
  check.id = "patch-check";
  check.querySelector("thead").remove();
  s.append(LS.el("h3", { text: "Check" }), check);
};
