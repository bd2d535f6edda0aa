// embeddings: word similarity as a heatmap, neighbours, analogy, context drift by layer, a 2-D picture.
LS.views.embeddings = function (doc, root) {
  const words = doc.words || [];
  const s = LS.section(root, "embeddings", doc.layer === null || doc.layer === undefined
    ? "Input embeddings" : `Hidden state after layer ${doc.layer}`);
  LS.warnings(s, doc);
  s.append(LS.table(["word", "tokens", "ids"], words.map((w) => [w.text, (w.tokens || []).map(LS.vis).join(" "), (w.token_ids || []).join(" ")])));
  if (doc.similarity && words.length > 1) {
    s.append(LS.el("h3", { text: "Cosine similarity" }), LS.legend("cosine", "-1", "1", LS.signed));
    const g = LS.el("div", { class: "grid", id: "similarity", style: { gridTemplateColumns: `max-content repeat(${words.length}, minmax(56px, max-content))` } });
    g.append(LS.el("div", { class: "cell label" }));
    words.forEach((w) => g.append(LS.el("div", { class: "cell", text: w.text })));
    doc.similarity.forEach((row, i) => {
      g.append(LS.el("div", { class: "cell label", text: words[i].text }));
      row.forEach((c, j) => g.append(LS.el("div", { class: "cell hot", "data-i": i, "data-j": j,
        title: `${words[i].text} \u00b7 ${words[j].text}: ${Number(c).toFixed(3)}`,
        style: { background: LS.signed(c), color: "#fff", padding: "2px 6px" },
        onmouseenter: (e) => LS.info(e.currentTarget.title) }, Number(c).toFixed(2))));
    });
    s.append(g);
  }
  const nearest = (top) => LS.table(["token", "id", "cosine"], (top || []).map((t) => [LS.vis(t.token), t.id, Number(t.cosine).toFixed(3)]), [1, 2]);
  if (doc.neighbors && doc.neighbors.length) {
    const n = LS.section(root, "neighbors", "Nearest vocabulary tokens");
    const box = LS.el("div", { class: "controls" });
    for (const w of doc.neighbors) box.append(LS.el("div", {}, LS.el("h3", { text: w.word }), nearest(w.top)));
    n.append(box);
  }
  if (doc.analogy) LS.section(root, "analogy", `Analogy: ${doc.analogy.expression}`, nearest(doc.analogy.top));
  if (doc.context) {
    const c = LS.section(root, "context", `"${doc.context.word}" in context, layer by layer`);
    c.append(LS.table(["#", "sentence", "positions"], doc.context.sentences.map((x, i) => [i, x.text, (x.positions || []).join(" ")]), [0]));
    const two = doc.context.sentences.length === 2;
    c.append(LS.table(["layer", two ? "cosine" : "mean cosine over pairs", ""], doc.context.layers.map((l) => {
      let v = l.cosine;
      if (v === undefined || v === null) {
        const m = l.similarity || [], vals = [];
        m.forEach((r, i) => r.forEach((x, j) => { if (j > i) vals.push(x); }));
        v = vals.reduce((a, b) => a + b, 0) / Math.max(1, vals.length);
      }
      return [l.layer === 0 ? "0 (embeddings)" : l.layer, Number(v).toFixed(3),
        LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(200 * Math.max(0, v))) + "px" } })];
    }), [1]));
  }
  if (doc.projection && doc.projection.length) {
    const p = LS.section(root, "projection", "The words projected to two dimensions (PCA)");
    const xs = doc.projection.map((q) => q.x), ys = doc.projection.map((q) => q.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const W = 560, H = 360, pad = 40;
    const sx = (x) => pad + (W - 2 * pad) * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
    const sy = (y) => H - pad - (H - 2 * pad) * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
    const esc = (t) => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const marks = doc.projection.map((q) => `<circle cx="${sx(q.x)}" cy="${sy(q.y)}" r="4" fill="currentColor"></circle>` +
      `<text x="${sx(q.x) + 7}" y="${sy(q.y) + 4}" font-size="13" fill="currentColor">${esc(q.label)}</text>`).join("");
    const box = LS.el("div", { id: "scatter" });
    box.innerHTML = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" style="border:1px solid var(--line)">${marks}</svg>`;
    p.append(box);
  }
};
