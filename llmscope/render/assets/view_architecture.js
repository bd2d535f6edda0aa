// inspect: the architecture's shape and its parameter budget.
LS.views.architecture = function (doc, root) {
  const s = LS.section(root, "inspect", `${doc.architecture || doc.model_type || "Model"}`);
  const fmt = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
  const rows = [
    ["model type", doc.model_type], ["layers", doc.num_hidden_layers], ["hidden size", doc.hidden_size],
    ["vocabulary", fmt(doc.vocab_size)], ["attention", doc.attention ? `${doc.attention}: ${doc.num_attention_heads} query heads, ${doc.num_key_value_heads} KV heads, head dim ${doc.head_dim}` : null],
    ["MLP", doc.mlp ? `${doc.mlp}, intermediate ${doc.intermediate_size}` : null], ["norm", doc.norm],
    ["positions", doc.position_encoding ? `${doc.position_encoding}, up to ${fmt(doc.max_position_embeddings)} tokens` : null],
    ["sliding window", doc.sliding_window], ["tied embeddings", doc.tie_word_embeddings],
  ].filter((r) => r[1] !== null && r[1] !== undefined);
  s.append(LS.table(["", ""], rows.map((r) => [r[0], String(r[1])])));
  const p = doc.parameters || {};
  const parts = Object.entries(p).filter(([k, v]) => k !== "total" && k !== "active" && typeof v === "number" && v > 0);
  s.append(LS.el("h3", { text: `Parameters: ${fmt(p.total)}` + (p.active && p.active !== p.total ? ` (${fmt(p.active)} active per token)` : "") }));
  s.append(LS.table(["part", "parameters", "share", ""], parts.map(([k, v]) => [
    k, fmt(v), `${(100 * v / p.total).toFixed(1)}%`,
    LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(240 * v / p.total)) + "px" } }),
  ]), [1, 2]));
};
