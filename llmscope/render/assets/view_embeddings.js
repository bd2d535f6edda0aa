// embeddings: word similarity as a heatmap, neighbours, analogy, context drift by layer, a 2-D picture.
// LS.extra holds what the terminal shows beyond --json: what the vectors are (layer, sizes, dtype), the
// analogy's terms and the tokens it left out, the PCA axes' share of the variance, the context tokens.
LS.views.embeddings = function (doc, root) {
  const x = LS.extra || {};
  const words = doc.words || [];
  const n = (v) => Number(v).toLocaleString("en");
  const layer = x.layer;  // null: rows of the input embeddings; "embed": the embedding output; N: layer N's output
  const s = LS.section(root, "embeddings", layer === null || layer === undefined ? "Input embeddings"
    : layer === "embed" ? "The embedding output" : `The output of layer ${layer}`);
  LS.warnings(s, doc);
  const about = [];
  if (x.vocab_size) {
    about.push(`input embeddings: ${n(x.vocab_size)} rows \u00d7 ${n(x.hidden_size)} (${x.dtype}${x.tied ? ", tied to the LM head" : ""}); ` +
      `${x.num_layers} layers`);
  }
  if (words.length && "layer" in x) {
    about.push("word vectors: " + (layer === null ? "the mean of each word's rows of the input embeddings"
      : (layer === "embed" ? "the embedding output" : `the output of layer ${layer}`) + ", each word run alone, mean over its tokens"));
  }
  if (about.length) s.append(LS.el("p", { class: "note", id: "embeddings-about" }, ...about.flatMap((t, i) => (i ? [LS.el("br"), t] : [t]))));
  if (words.length) {
    s.append(LS.table(["word", "tokens", "ids"], words.map((w) => [w.text, (w.tokens || []).map((t) => LS.vis(t) || "\u2205").join(" "),
      (w.token_ids || []).join(" ")])));
  }
  if (doc.similarity && words.length > 1) {
    s.append(LS.el("h3", { text: "Cosine similarity" }), LS.legend("cosine", "-1", "1", LS.signed));
    const g = LS.el("div", { class: "grid", id: "similarity", style: { gridTemplateColumns: `max-content repeat(${words.length}, minmax(56px, max-content))` } });
    g.append(LS.el("div", { class: "cell label" }));
    words.forEach((w) => g.append(LS.el("div", { class: "cell", text: w.text })));
    doc.similarity.forEach((row, i) => {
      g.append(LS.el("div", { class: "cell label", text: words[i].text }));
      row.forEach((c, j) => g.append(LS.el("div", { class: "cell hot", "data-i": i, "data-j": j,
        title: `${words[i].text} \u00b7 ${words[j].text}: ${Number(c).toFixed(3)}`,
        style: { background: LS.signed(c), color: LS.signedInk(c), padding: "2px 6px" },
        onmouseenter: (e) => LS.info(e.currentTarget.title) }, Number(c).toFixed(2))));
    });
    s.append(g);
  }
  const bar = (v, width) => LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(width * Math.max(0, v))) + "px" } });
  const nearest = (top, bars) => LS.table(["#", "token", "id", "cosine", ...(bars ? [""] : [])], (top || []).map((t, i) => [
    i + 1, LS.vis(t.token) || "\u2205", t.id ?? "-", Number(t.cosine).toFixed(3), ...(bars ? [bar(t.cosine, 160)] : [])]), [0, 2, 3]);
  if (doc.neighbors && doc.neighbors.some((w) => (w.top || []).length)) {
    const among = layer !== null && layer !== undefined;  // with --layer: the other words, not the vocabulary
    const nb = LS.section(root, "neighbors", among ? "Nearest other words (cosine)" : "Nearest vocabulary tokens (cosine)");
    const box = LS.el("div", { class: "controls" });
    for (const w of doc.neighbors) box.append(LS.el("div", {}, LS.el("h3", { text: w.word }), nearest(w.top)));
    nb.append(box);
    if (!among) nb.append(LS.el("p", { class: "note", text: "the word's own tokens left out" }));
  }
  if (doc.analogy) {
    const a = LS.section(root, "analogy", `${doc.analogy.expression} \u2248`, nearest(doc.analogy.top, true));
    const ax = x.analogy || {};
    const caveat = LS.el("p", { class: "note", id: "analogy-caveat" }, "3CosAdd: each term's vector made unit length, added or subtracted" +
      (layer === null || layer === undefined ? "" : "; input embeddings, not --layer"));
    if ((ax.left_out || []).length) {
      caveat.append(LS.el("br"), "left out, the terms' own tokens: " +
        ax.left_out.map((t) => `${LS.vis(t.token) || "\u2205"} (#${n(t.rank)}, ${Number(t.cosine).toFixed(3)})`).join(", "));
    }
    a.append(caveat);
  }
  if (doc.context) LS.embeddingsContext(doc, root, x);
  if (doc.projection && doc.projection.length) LS.embeddingsScatter(doc, root, x);
};

// --context: the word in each sentence, its cosine between the sentences at every depth.
LS.embeddingsContext = function (doc, root, x) {
  const ctx = doc.context, cx = x.context || {};
  const name = (l) => (l.layer === null || l.layer === undefined ? "embed" : String(l.layer));
  const c = LS.section(root, "context", `"${ctx.word}" across the sentences: cosine at every depth`);
  c.append(LS.table(["#", "sentence", "tokens", "positions"], ctx.sentences.map((s, i) => [i + 1, s.text,
    ((cx.tokens || [])[i] || []).map((t) => LS.vis(t) || "\u2205").join(" "), (s.positions || []).join(", ")]), [0]));
  const sentences = ctx.sentences.length;
  const pairs = [];
  for (let a = 0; a < sentences; a++) for (let b = a + 1; b < sentences; b++) pairs.push([a, b]);
  const notes = [`embed: the embedding output; N: the output of layer N (0 to ${(x.num_layers || ctx.layers.length - 1) - 1}, ` +
    "before the final norm, as in layers and attention); each sentence read with its special tokens"];
  let table;
  if (pairs.length === 1) {
    const baseline = cx.baseline || [];
    table = LS.table(["layer", "cosine", "", "others"], ctx.layers.map((l, i) => [name(l), Number(l.cosine).toFixed(3),
      LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(200 * Math.max(0, l.cosine))) + "px" } }),
      baseline[i] === null || baseline[i] === undefined ? "-" : Number(baseline[i]).toFixed(3)]), [0, 1, 3]);
    notes.push("others: the mean cosine between the other tokens of the two sentences, what any two tokens share at that depth");
  } else {
    table = LS.table(["layer", ...pairs.map(([a, b]) => `${a + 1}~${b + 1}`)], ctx.layers.map((l) => [name(l),
      ...pairs.map(([a, b]) => {
        const v = (l.similarity || [])[a]?.[b];
        return v === undefined || v === null ? "-" : LS.el("span", { class: "tok", style: { background: LS.signed(v), color: LS.signedInk(v) },
          text: Number(v).toFixed(2) });
      })]), pairs.map((_, i) => i + 1));
  }
  table.id = "context-layers";
  c.append(table, LS.el("p", { class: "note" }, ...notes.flatMap((t, i) => (i ? [LS.el("br"), t] : [t]))));
};

// --plot: the words' unit vectors projected on their first two principal components, the axes named with
// their share of the variance; a label near the right edge goes to the left of its point, never clipped.
LS.embeddingsScatter = function (doc, root, x) {
  const p = LS.section(root, "projection", "The words in two dimensions (PCA of the unit vectors)");
  const pts = doc.projection;
  const xs = pts.map((q) => q.x), ys = pts.map((q) => q.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const W = 640, H = 400, left = 56, right = 24, top = 20, bottom = 52;
  const sx = (v) => left + (W - left - right) * (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5);
  const sy = (v) => H - bottom - (H - top - bottom) * (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5);
  const esc = (t) => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  const share = (i) => (x.explained && x.explained[i] !== null && x.explained[i] !== undefined
    ? ` (${Math.round(100 * x.explained[i])}% of the variance)` : "");
  const marks = pts.map((q) => {
    const cx = sx(q.x), cy = sy(q.y), toLeft = cx > (left + W - right) / 2;
    return `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="4" fill="currentColor"></circle>` +
      `<text class="point-label" x="${(toLeft ? cx - 8 : cx + 8).toFixed(1)}" y="${(cy + 4).toFixed(1)}" font-size="13" ` +
      `text-anchor="${toLeft ? "end" : "start"}" fill="currentColor">${esc(LS.vis(q.label))}</text>`;
  }).join("");
  const axes = `<path d="M${left - 8} ${top - 8} V${H - bottom + 8} H${W - right + 8}" fill="none" stroke="currentColor" stroke-opacity="0.5"></path>` +
    `<text class="axis-label" id="axis-x" x="${(left + W - right) / 2}" y="${H - 14}" font-size="12" text-anchor="middle" fill="currentColor">PC1${esc(share(0))}</text>` +
    `<text class="axis-label" id="axis-y" transform="translate(18 ${(top + H - bottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle" fill="currentColor">PC2${esc(share(1))}</text>`;
  const box = LS.el("div", { id: "scatter" });
  box.innerHTML = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" style="border:1px solid var(--line); overflow:visible">${axes}${marks}</svg>`;
  p.append(box);
};
