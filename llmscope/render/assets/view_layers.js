// layers: the logit lens as a grid (rows: hidden states, columns: positions), the hidden-state norms, the
// LM head's output (the last step of the pipeline) and the KV cache, as the terminal shows them.
LS.views.layers = function (doc, root) {
  const s = LS.section(root, "layers", "Logit lens");
  LS.warnings(s, doc);
  const rows = doc.layers || [];
  const tokens = doc.tokens || [];
  const name = (r) => (r === 0 ? "embed" : `L${r - 1}`);
  const lens = `${doc.final_norm ? doc.final_norm + " + " : ""}${doc.lm_head || "the LM head"}` +
    (doc.softcapping ? ` + softcapping ${doc.softcapping}` : "");
  s.append(LS.el("p", { class: "note", id: "layers-about" },
    `${(doc.input_ids || tokens).length} tokens, ${rows.length - 1} layers, ${doc.dtype || ""}; focus token `,
    LS.el("code", { text: LS.vis(tokens[doc.position]) }), ` (position ${doc.position}); lens: ${lens}`));
  // grid[r][p] (with --all-tokens); otherwise only the focus position's column is known
  const grid = doc.grid || rows.map((r) => { const g = []; g[doc.position] = Object.assign({ top: r.lens_top }, r.lens); return g; });
  const positions = doc.grid ? tokens.map((_, i) => i) : [doc.position];
  s.append(LS.el("p", { class: "note", text:
    "Each cell: the token the model would predict if it stopped after that layer (final norm and head applied), " +
    "coloured by its probability. Hover for the runners-up. embed: the embedding output; Ln: the output of layer n." }));
  s.append(LS.legend("probability", "0", "1"));
  const g = LS.el("div", { class: "grid", id: "lens-grid",
    style: { gridTemplateColumns: `max-content repeat(${positions.length}, minmax(54px, max-content))` } });
  g.append(LS.el("div", { class: "cell label" }));
  for (const p of positions) {
    g.append(LS.el("div", { class: "cell collabel", "data-pos": p, title: `position ${p}: ${LS.quote(tokens[p])}`,
      text: LS.short(tokens[p], 10) }));
  }
  rows.forEach((row, r) => {
    g.append(LS.el("div", { class: "cell label", text: name(r) }));
    for (const p of positions) {
      const c = (grid[r] || [])[p];
      if (!c) { g.append(LS.el("div", { class: "cell masked" })); continue; }
      const top = (c.top || []).map((t) => `${LS.vis(t.token)} ${LS.pct(t.prob)}`).join(", ");
      g.append(LS.el("div", { class: "cell hot", "data-layer": r, "data-pos": p,
        title: `${r === 0 ? "embeddings" : "layer " + (r - 1)} @ ${LS.quote(tokens[p])}: ${LS.quote(c.token)} ${LS.pct(c.prob)}` + (top ? `; top: ${top}` : ""),
        style: { background: LS.color(c.prob), color: LS.ink(c.prob), padding: "2px 4px" },
        onmouseenter: (e) => LS.info(e.currentTarget.title) }, LS.short(c.token, 8)));
    }
  });
  s.append(g);
  const h = LS.section(root, "hidden-states", "Hidden states at position " + doc.position);
  h.append(LS.el("p", { class: "note", text: "shape: (batch, tokens, hidden); norm, added norm and cosine at the focus token" }));
  h.append(LS.table(["#", "layer", "module", "shape", "norm", "added norm", "cos to previous", "lens", "prob"], rows.map((r, i) => [
    r.index, i === 0 ? "embed" : i - 1, r.name, (r.shape || []).join("\u00d7"), LS.num(r.norm, 1), LS.num(r.delta_norm, 1),
    LS.num(r.cosine_to_previous, 3), r.lens ? LS.vis(r.lens.token) : "-", r.lens ? LS.pct(r.lens.prob) : "-",
  ]), [0, 4, 5, 6, 8]));
  LS.layersHead(doc, root);
  LS.layersCache(doc, root);
};

// The LM head's output: the logits' shape for the whole prompt (batch, tokens, vocab), what this run computed,
// the row taken and its argmax, the model's next token.
LS.layersHead = function (doc, root) {
  const o = doc.head_output;
  if (!o) return;
  const shape = (a) => (a || []).map((x) => Number(x).toLocaleString("en")).join("\u00d7");
  const same = JSON.stringify(o.shape) === JSON.stringify(o.computed);
  const where = o.position === (doc.input_ids || doc.tokens || []).length - 1 ? "the last token" : "the mask";
  const h = LS.section(root, "head-output", "LM head");
  h.append(LS.el("p", { id: "head-shape" }, "logits ", LS.el("code", { text: shape(o.shape) }), " (batch, tokens, vocab)",
    same ? "" : LS.el("span", { class: "muted", text: `; this run computed only the row it needs, ${shape(o.computed)}, as generate does` })));
  const p = o.prediction || {};
  h.append(LS.el("p", { id: "head-prediction" }, `row ${o.position} (${where}) \u2192 argmax `,
    LS.el("code", { text: LS.vis(p.token) }), ` (id ${p.id}, ${LS.pct(p.prob)})`));
};

// The KV cache: consecutive layers of one shape in a row, the shapes' axes named, bytes each and in total.
LS.layersCache = function (doc, root) {
  const kv = doc.kv_cache;
  if (!kv) {
    LS.section(root, "kv-cache", "KV cache", LS.el("p", { class: "note", text: "none (an encoder sees the whole text at once)" }));
    return;
  }
  const axes = (kv.axes || ["batch", "kv_heads", "tokens", "head_dim"]).map((a) => a.replace("kv_heads", "KV heads")).join("\u00d7");
  const bytes = LS.bytes;
  const groups = [];
  for (const l of kv.layers || []) {
    const key = JSON.stringify([l.layer_type, l.key_shape, l.value_shape, l.bytes]), last = groups[groups.length - 1];
    if (last && last.key === key && last.to === l.layer - 1) last.to = l.layer;
    else groups.push({ key, from: l.layer, to: l.layer, l });
  }
  const c = LS.section(root, "kv-cache", `KV cache (${kv.cache_class}, ${kv.dtype})`);
  const rows = groups.map((x) => [x.from === x.to ? x.from : `${x.from}-${x.to}`, (x.l.layer_type || "").replace("_attention", ""),
    (x.l.key_shape || []).join("\u00d7"), (x.l.value_shape || []).join("\u00d7"), bytes(x.l.bytes)]);
  rows.push(["total", "", "", "", bytes(kv.bytes)]);
  c.append(LS.table(["layers", "type", `key (${axes})`, "value", "bytes each"], rows, [4]));
};
