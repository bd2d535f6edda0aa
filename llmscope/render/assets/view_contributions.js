// contributions: what each part wrote onto the answer's logit, by layer (attention, MLP, the total so far),
// with --by head a layer x head heatmap on the diverging scale (hover a cell for its share), and the check.
LS.views.contributions = function (doc, root) {
  const what = `logit(${LS.quote(doc.target)})` + (doc.versus !== null ? ` - logit(${LS.quote(doc.versus)})` : "");
  const s = LS.section(root, "contributions", `Who wrote ${what}?`);
  LS.warnings(s, doc);
  s.append(LS.el("p", { class: "note", text: `at the last position of ${LS.vis(doc.tokens.join(""))}, by ${doc.by}, ${doc.dtype}` }));
  const scale = Math.max(1e-30, Math.abs(doc.embedding), ...doc.layers.map((l) => Math.max(Math.abs(l.attention), Math.abs(l.mlp))));
  const cell = (v) => LS.el("span", { class: "tok", title: (v >= 0 ? "+" : "") + v.toFixed(4),
    style: { background: LS.signed(v / scale), color: LS.signedInk(v / scale) }, text: (v >= 0 ? "+" : "") + v.toFixed(3) });
  let total = doc.embedding;
  const rows = [["embed", cell(doc.embedding), "", total.toFixed(3)]];
  for (const l of doc.layers) {
    total += l.attention + l.mlp;
    rows.push([l.layer, cell(l.attention), cell(l.mlp), total.toFixed(3)]);
  }
  const table = LS.table(["layer", "attention", "MLP", "total so far"], rows, [0, 3]);
  table.id = "contributions-layers";
  s.append(LS.legend("share of the logit", "against", "for", LS.signed), table);
  if (doc.layers.length && doc.layers[0].heads) {
    const H = doc.layers[0].heads.length;
    const hs = Math.max(1e-30, ...doc.layers.flatMap((l) => l.heads.map(Math.abs)));
    const g = LS.el("div", { class: "grid", id: "contributions-heads", style: { gridTemplateColumns: `max-content repeat(${H}, 22px)` } });
    g.append(LS.el("div", { class: "cell label" }));
    for (let h = 0; h < H; h++) g.append(LS.el("div", { class: "cell collabel", text: String(h) }));
    for (const l of doc.layers) {
      g.append(LS.el("div", { class: "cell label", text: String(l.layer) }));
      l.heads.forEach((v, h) => {
        const c = LS.el("div", { class: "cell hot", "data-layer": l.layer, "data-head": h,
          title: `layer ${l.layer} head ${h}: ${(v >= 0 ? "+" : "") + v.toFixed(4)}` });
        c.style.background = LS.signed(v / hs);
        c.addEventListener("mouseenter", () => LS.info(c.title));
        g.append(c);
      });
    }
    s.append(LS.el("h3", { text: "Each head's share (layers down, heads across)" }), g);
  }
  const check = LS.table(["", ""], [
    ["sum", `embedding ${doc.embedding.toFixed(4)} + layers + bias ${doc.bias.toFixed(4)} = ${doc.sum.toFixed(4)}`],
    ["the model's logit", doc.logit_before_softcap !== null ? `${doc.logit_before_softcap.toFixed(4)} before its soft-cap, ${doc.logit.toFixed(4)} after` : doc.logit.toFixed(4)],
    ["check", `|sum - logit| / max(1, |logit|) = ${doc.error.toExponential(1)}` + (doc.error < 1e-4 ? " (the parts add up)" : " (OVER 1e-4)")],
  ]);
  check.id = "contributions-check";
  check.querySelector("thead").remove();
  s.append(LS.el("h3", { text: "Check" }), check);
};
