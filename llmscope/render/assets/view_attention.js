// attention: pick a layer and a head (or the mean over heads); hover a cell for its weight;
// click a query token to rank, across all layers, what it attends to.
LS.views.attention = function (doc, root) {
  const s = LS.section(root, "attention", "Attention");
  LS.warnings(s, doc);
  const tokens = doc.tokens || [];
  const layers = doc.layers && doc.layers.length ? doc.layers
    : [{ layer: doc.layer, layer_type: null, heads: doc.heads_weights || null, mean: doc.weights }];
  const kind = doc.kind || {};
  const notes = [];
  const H = kind.num_attention_heads, KV = kind.num_key_value_heads;
  if (KV && H && KV < H) {
    notes.push(KV === 1 ? `MQA: all ${H} query heads share one key/value head`
      : `GQA: each group of ${H / KV} query heads shares one key/value head (${KV} KV heads for ${H} query heads)`);
  }
  if (kind.sliding_window) notes.push(`sliding-window layers see only the last ${kind.sliding_window} tokens; full layers see all`);
  for (const n of doc.notes || []) notes.push(n);
  for (const n of notes) s.append(LS.el("p", { class: "note", text: n }));
  const layerSel = LS.el("select", { name: "layer", "aria-label": "layer" },
    layers.map((l) => LS.el("option", { value: l.layer, text: `layer ${l.layer}` + (l.layer_type ? ` (${l.layer_type})` : "") })));
  const nHeads = Math.max(0, ...layers.map((l) => (l.heads || []).length));
  const headSel = LS.el("select", { name: "head", "aria-label": "head" },
    LS.el("option", { value: "mean", text: "mean over heads" }),
    Array.from({ length: nHeads }, (_, h) => LS.el("option", { value: h, text: `head ${h}` })));
  const scaleBox = LS.el("input", { type: "checkbox", name: "scale", checked: true });
  s.append(LS.el("div", { class: "controls" }, LS.el("label", {}, "Layer ", layerSel), LS.el("label", {}, "Head ", headSel),
    LS.el("label", {}, scaleBox, " colour relative to this head's largest weight (off: 0 to 1)")));
  const legend = LS.el("div", {});
  s.append(legend);
  // start where the terminal view was asked to look (--layer, --head)
  if (doc.layer !== undefined && doc.layer !== null) layerSel.value = String(doc.layer);
  if (doc.head !== undefined && doc.head !== null) headSel.value = String(doc.head);
  const heat = LS.el("div", { id: "heatmap" });
  const rank = LS.el("div", { id: "ranking" });
  s.append(heat, rank);
  const matrix = (l, head) => {
    if (head !== "mean" && l.heads) return l.heads[Number(head)];
    if (l.mean) return l.mean;
    const hs = l.heads || [];
    return hs[0].map((row, q) => row.map((_, k) => hs.reduce((a, m) => a + m[q][k], 0) / hs.length));
  };
  const draw = () => {
    const l = layers.find((x) => String(x.layer) === layerSel.value) || layers[0];
    const m = matrix(l, headSel.value);
    const T = tokens.length;
    // most weight often sits on the first token: scaling to the head's largest weight (square root,
    // as the terminal does) keeps the rest visible
    const top = scaleBox.checked ? Math.max(1e-9, ...m.flat().filter((w) => w !== null)) : 1;
    const shade = (w) => (scaleBox.checked ? Math.sqrt(w / top) : w);
    legend.replaceChildren(LS.legend(scaleBox.checked ? "attention weight (\u221a of weight / largest)" : "attention weight",
      "0", scaleBox.checked ? top.toFixed(3) : "1"));
    const g = LS.el("div", { class: "grid", style: { gridTemplateColumns: `max-content repeat(${T}, 22px)` } });
    g.append(LS.el("div", { class: "cell label" }));
    tokens.forEach((t, k) => g.append(LS.el("div", { class: "cell collabel", title: `key ${k}: ${JSON.stringify(t)}`, text: LS.short(t, 8) })));
    m.forEach((row, q) => {
      g.append(LS.el("div", { class: "cell label tok clickable", "data-query": q, tabindex: "0",
        title: `query ${q}: ${JSON.stringify(tokens[q])} (click: rank what it attends to in every layer)`,
        onclick: () => rankQuery(q), text: LS.short(tokens[q], 10) }));
      row.forEach((w, k) => {
        const masked = w === null || (k > q && w === 0 && kind.causal !== false);
        g.append(LS.el("div", { class: "cell" + (masked ? " masked" : " hot"), "data-q": q, "data-k": k,
          title: masked ? `${LS.vis(tokens[q])} \u2192 ${LS.vis(tokens[k])}: masked` : `${LS.vis(tokens[q])} \u2192 ${LS.vis(tokens[k])}: ${Number(w).toFixed(3)}`,
          style: masked ? null : { background: LS.color(shade(w)) },
          onmouseenter: (e) => LS.info(`layer ${l.layer}, ${headSel.value === "mean" ? "mean over heads" : "head " + headSel.value}: ${e.currentTarget.title}`) }));
      });
    });
    heat.replaceChildren(g);
  };
  const rankQuery = (q) => {
    const head = headSel.value;
    const rows = layers.map((l) => {
      const w = matrix(l, head)[q];
      const order = w.map((v, k) => [v ?? 0, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
      return [l.layer + (l.layer_type ? ` (${l.layer_type})` : ""), ...order.map(([v, k]) => `${LS.vis(tokens[k])} ${v.toFixed(3)}`)];
    });
    rank.replaceChildren(LS.el("h3", { text: `What ${JSON.stringify(tokens[q])} (query ${q}) attends to, layer by layer` }),
      LS.table(["layer", "1st", "2nd", "3rd"], rows));
    rank.dataset.query = q;
  };
  layerSel.addEventListener("change", draw);
  headSel.addEventListener("change", draw);
  scaleBox.addEventListener("change", draw);
  draw();
};
