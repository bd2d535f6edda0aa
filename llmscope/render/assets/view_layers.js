// layers: the logit lens as a grid (rows: hidden states, columns: positions), and the hidden-state norms.
LS.views.layers = function (doc, root) {
  const s = LS.section(root, "layers", "Logit lens");
  LS.warnings(s, doc);
  const rows = doc.layers || [];
  const tokens = doc.tokens || [];
  // grid[r][p] (with --all-tokens); otherwise only the focus position's column is known
  const grid = doc.grid || rows.map((r) => { const g = []; g[doc.position] = Object.assign({ top: r.lens_top }, r.lens); return g; });
  const positions = doc.grid ? tokens.map((_, i) => i) : [doc.position];
  s.append(LS.el("p", { class: "note", text:
    "Each cell: the token the model would predict if it stopped after that layer (final norm and head applied), " +
    "coloured by its probability. Hover for the runners-up." }));
  s.append(LS.legend("probability", "0", "1"));
  const g = LS.el("div", { class: "grid", id: "lens-grid",
    style: { gridTemplateColumns: `max-content repeat(${positions.length}, minmax(54px, max-content))` } });
  g.append(LS.el("div", { class: "cell label" }));
  for (const p of positions) g.append(LS.el("div", { class: "cell collabel", title: `position ${p}`, text: LS.short(tokens[p], 10) }));
  rows.forEach((row, r) => {
    g.append(LS.el("div", { class: "cell label", text: r === 0 ? "embed" : `L${r - 1}` }));
    for (const p of positions) {
      const c = (grid[r] || [])[p];
      if (!c) { g.append(LS.el("div", { class: "cell masked" })); continue; }
      const top = (c.top || []).map((t) => `${LS.vis(t.token)} ${LS.pct(t.prob)}`).join(", ");
      g.append(LS.el("div", { class: "cell hot", "data-layer": r, "data-pos": p,
        title: `${r === 0 ? "embeddings" : "layer " + (r - 1)} @ ${JSON.stringify(tokens[p])}: ${JSON.stringify(c.token)} ${LS.pct(c.prob)}` + (top ? `; top: ${top}` : ""),
        style: { background: LS.color(c.prob), color: LS.ink(c.prob), padding: "2px 4px" },
        onmouseenter: (e) => LS.info(e.currentTarget.title) }, LS.short(c.token, 8)));
    }
  });
  s.append(g);
  const h = LS.section(root, "hidden-states", "Hidden states at position " + doc.position);
  h.append(LS.table(["#", "module", "shape", "norm", "added norm", "cos to previous"], rows.map((r) => [
    r.index, r.name, (r.shape || []).join(" x "), LS.num(r.norm, 1), LS.num(r.delta_norm, 1), LS.num(r.cosine_to_previous, 3),
  ]), [0, 3, 4, 5]));
};
