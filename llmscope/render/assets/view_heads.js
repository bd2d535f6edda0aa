// heads: a layer x head heatmap per pattern (hover a cell for its score), the top heads, the query/key ranking.
LS.views.heads = function (doc, root) {
  const s = LS.section(root, "heads", "Attention heads");
  LS.warnings(s, doc);
  const names = { previous_token: "previous token", first_token: "first token (sink)", self: "self",
    duplicate_token: "duplicate token", induction: "induction" };
  const heads = doc.heads || [];
  const L = Math.max(0, ...heads.map((h) => h.layer)) + 1, H = Math.max(0, ...heads.map((h) => h.head)) + 1;
  const input = doc.probe ? `the induction probe (seed ${doc.seed}): random ordinary tokens, then the same again, ${doc.tokens.length} tokens`
    : `the prompt, ${doc.tokens.length} tokens`;
  s.append(LS.el("p", { class: "note", text: `${L} layers x ${H} heads; input: ${input}. Each score is a mean over the queries where the pattern is defined.` }));
  s.append(LS.legend("score", "0", "1"));
  const maps = LS.el("div", { class: "controls", style: { alignItems: "flex-start", gap: "24px" } });
  for (const [key, title] of Object.entries(names)) {
    const g = LS.el("div", { class: "grid", style: { gridTemplateColumns: `max-content repeat(${H}, 16px)` } });
    g.append(LS.el("div", { class: "cell label" }));
    for (let h = 0; h < H; h++) g.append(LS.el("div", { class: "cell collabel", text: String(h) }));
    for (let l = 0; l < L; l++) {
      g.append(LS.el("div", { class: "cell label", text: String(l) }));
      for (let h = 0; h < H; h++) {
        const row = heads.find((x) => x.layer === l && x.head === h) || {};
        const v = row[key];
        const cell = LS.el("div", { class: v === null || v === undefined ? "cell masked" : "cell hot",
          title: `layer ${l} head ${h} (KV head ${row.kv_head}): ${names[key]} ${v === null || v === undefined ? "not defined" : v.toFixed(3)}` });
        if (v !== null && v !== undefined) cell.style.background = LS.color(Math.max(0, Math.min(1, v)));
        cell.addEventListener("mouseenter", () => LS.info(cell.title));
        g.append(cell);
      }
    }
    maps.append(LS.el("div", {}, LS.el("h3", { text: title }), g));
  }
  s.append(maps);
  const top = Object.entries(names).map(([key, title]) => {
    const best = heads.filter((h) => h[key] !== null && h[key] !== undefined).sort((a, b) => b[key] - a[key]).slice(0, 5);
    return [title, ...best.map((h) => `L${h.layer} H${h.head} ${h[key].toFixed(2)}`)];
  });
  s.append(LS.el("h3", { text: "Top heads per pattern" }), LS.table(["pattern", "#1", "#2", "#3", "#4", "#5"], top));
  if (doc.ranking) {
    const r = LS.section(root, "ranking", `Heads ranked by the weight ${LS.vis(doc.query.token)} (position ${doc.query.position}) gives ${LS.vis(doc.key.token)} (position ${doc.key.position})`);
    r.append(LS.table(["layer", "head", "weight", "", "first token"], doc.ranking.slice(0, 20).map((x) => [
      x.layer, x.head, LS.pct(x.weight), LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(200 * x.weight)) + "px" } }),
      LS.pct(x.first_token)]), [0, 1, 2, 4]));
    r.append(LS.el("p", { class: "note", text: "first token: that head's share on the first token, an attention sink (weight parked where it carries little), not meaning." }));
  }
};
