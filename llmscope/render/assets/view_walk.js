// attention --walk: one head of one layer, step by step, for the query token picked in the select.
LS.views.walk = function (doc, root) {
  const w = doc.walk;
  const s = LS.section(root, "walk", `Attention walk: one head, step by step (${w.num_heads} heads per layer)`);
  LS.warnings(s, doc);
  // every (layer, head) the page holds: the walked one, then doc.views (the other heads and layers)
  const first = doc.queries && doc.queries.length ? doc.queries : [Object.assign({}, w, { position: w.query.position, token: w.query.token })];
  const views = [{ layer: w.layer, head: w.head, kv_head: w.kv_head, layer_type: w.layer_type, rows: first }, ...(doc.views || [])];
  const find = (l, h) => views.find((v) => v.layer === l && v.head === h);
  const layers = [...new Set(views.map((v) => v.layer))].sort((a, b) => a - b);
  const layerSel = LS.el("select", { name: "layer", "aria-label": "layer" },
    layers.map((l) => LS.el("option", { value: l, text: `layer ${l}` })));
  const headSel = LS.el("select", { name: "head", "aria-label": "head" });
  const sel = LS.el("select", { name: "query", "aria-label": "query token" },
    first.map((r) => LS.el("option", { value: r.position, text: `${r.position}: ${LS.vis(r.token)}` })));
  const fillHeads = () => {
    const l = Number(layerSel.value);
    headSel.replaceChildren(...views.filter((v) => v.layer === l).sort((a, b) => a.head - b.head)
      .map((v) => LS.el("option", { value: v.head, text: `head ${v.head}` })));
  };
  layerSel.value = String(w.layer);
  fillHeads();
  headSel.value = String(w.head);
  sel.value = String(w.query.position);
  s.append(LS.el("div", { class: "controls" }, LS.el("label", {}, "Layer ", layerSel), LS.el("label", {}, "Head ", headSel),
    LS.el("label", {}, "Query token ", sel)));
  if (doc.views_note) s.append(LS.el("p", { class: "note", text: doc.views_note }));
  const pos = w.positions === "rope"
    ? `RoPE rotates q and every k (theta ${w.rope_theta ? w.rope_theta.toLocaleString("en") : "?"}`
      + (w.rotary_dims && w.rotary_dims !== w.head_dim ? `, ${w.rotary_dims} of ${w.head_dim} dimensions` : "") + ")"
    : w.positions === "alibi" ? `ALiBi adds ${LS.num(w.alibi_slope, 4)} x the key's position to its score`
      : w.positions === "absolute" ? "absolute positions were added to the embeddings" : "no position signal inside attention";
  const body = LS.el("div", {});
  s.append(body);
  const draw = () => {
    const view = find(Number(layerSel.value), Number(headSel.value)) || views[0];
    const rows = view.rows;
    const r = rows.find((x) => String(x.position) === sel.value) || rows[0];
    const masked = r.keys.filter((k) => k.masked).length;
    const g = w.num_heads / w.num_key_value_heads;
    const kv = w.num_key_value_heads === w.num_heads ? `its own keys and values (KV head ${view.kv_head})`
      : `KV head ${view.kv_head}, shared with heads ${view.kv_head * g}-${view.kv_head * g + g - 1}`
        + ` (${w.num_key_value_heads === 1 ? "MQA" : "GQA"}: ${w.num_heads} query heads, ${w.num_key_value_heads} KV)`;
    const hd = view.head;
    const steps = [
      `the hidden state entering attention (after the block's input norm): ||x|| = ${LS.num(r.hidden_norm, 3)}`,
      `layer ${view.layer}${view.layer_type ? " (" + view.layer_type.replace("_", " ") + ")" : ""}: q for head ${hd} (${w.head_dim} dimensions), k and v for every key; head ${hd} reads ${kv}`,
      pos + (r.query_norm_before_rope !== null && r.query_norm_before_rope !== undefined
        ? `; ||q|| ${LS.num(r.query_norm_before_rope, 3)} before, ${LS.num(r.query_norm, 3)} after` : ""),
      w.qk_norm ? "QK-norm normalises q and k before the scores" : "no QK-norm",
      `score = q . k per key, times the scale ${LS.num(w.scale, 6)} (${w.scale_source})`
        + (w.softcap ? `, soft-capped at ${w.softcap}` : "")
        + (w.causal ? `; ${view.layer_type === "sliding_attention" && w.window ? "a sliding window" : "causal"}: ${masked} key(s) masked` : "; bidirectional")
        + (r.sink_logit !== null && r.sink_logit !== undefined ? `; a learned sink logit ${LS.num(r.sink_logit, 3)}` : ""),
      "softmax over the keys: the weights below sum to "
        + (r.sink_weight !== null && r.sink_weight !== undefined ? `${LS.num(1 - r.sink_weight, 4)} (the sink takes ${LS.pct(r.sink_weight)})` : "1"),
      `the weighted sum of the values: the head's output, ||out|| = ${LS.num(r.output_norm, 3)}`,
      `head ${hd}'s slice of the output projection writes a vector of norm ${LS.num(r.write_norm, 3)}; with every other head's, the attention output (norm ${LS.num(r.attention_output_norm, 3)})`,
    ];
    const list = LS.el("ol", {}, steps.map((t) => LS.el("li", { text: t })));
    const table = LS.table(["#", "key", "q . k", "scaled", "weight", "", "||v||", "weight x ||v||"], r.keys.map((k) => [
      k.position, LS.vis(k.token), LS.num(k.score, 3), k.masked ? "masked" : LS.num(k.scaled, 3), LS.pct(k.weight),
      LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(200 * k.weight)) + "px" } }),
      LS.num(k.value_norm, 3), LS.num(k.weighted_value_norm, 3),
    ]), [0, 2, 3, 4, 6, 7]);
    const c = w.check;
    const check = LS.el("p", { class: "note", text: `check: recomputed weights vs the model's eager attention: max |diff| ${c.weights_max_abs_error.toExponential(1)}; head outputs and attention output vs the model's: ${c.output_max_abs_error.toExponential(1)}` });
    body.replaceChildren(list, LS.el("h3", { text: `Keys for the query ${LS.vis(r.token)} (position ${r.position})` }), table, check);
  };
  sel.addEventListener("change", draw);
  headSel.addEventListener("change", draw);
  layerSel.addEventListener("change", () => { fillHeads(); draw(); });
  draw();
};
