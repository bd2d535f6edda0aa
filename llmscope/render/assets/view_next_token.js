// next-token: the prompt, the candidates for the next token as bars, and each --steps step as a token.
LS.views.next_token = function (doc, root) {
  const s = LS.section(root, "next-token", "Next token");
  LS.warnings(s, doc);
  s.append(LS.el("p", { class: "text" }, LS.el("span", { class: "muted", text: doc.prompt || "" })));
  const candidates = (list) => LS.table(["rank", "token", "id", "probability", ""], (list || []).map((c) => [
    c.rank, LS.vis(c.token), c.id, LS.pct(c.prob),
    LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(240 * c.prob)) + "px" } }),
  ]), [0, 2, 3]);
  s.append(candidates(doc.candidates));
  const meta = [];
  if (doc.entropy !== undefined && doc.entropy !== null) meta.push(`entropy ${LS.num(doc.entropy_bits, 2)} bits`);
  if (doc.temperature !== undefined) meta.push(`temperature ${doc.temperature}`);
  if (meta.length) s.append(LS.el("p", { class: "note", text: meta.join(" \u00b7 ") }));
  if (!doc.steps || !doc.steps.length) return;
  const st = LS.section(root, "steps", `${doc.steps.length} steps (${doc.strategy || ""}; stop: ${doc.stop_reason || "-"})`);
  st.append(LS.legend("probability of the chosen token", "0", "1"));
  const line = LS.el("div", { class: "text", id: "step-text" }, LS.el("span", { class: "muted", text: doc.prompt || "" }));
  const detail = LS.el("div", { id: "step-detail" });
  doc.steps.forEach((step, i) => {
    const c = step.chosen || {};
    const runners = (step.candidates || []).slice(0, 5).map((x) => `${LS.vis(x.token)} ${LS.pct(x.prob)}`).join(", ");
    const span = LS.token(c.token, c.prob, { class: "tok clickable", "data-step": i,
      title: `step ${i + 1}: ${JSON.stringify(c.token)} id ${c.id} p=${LS.pct(c.prob)} rank ${c.rank}; top: ${runners}` });
    span.addEventListener("click", () => {
      detail.replaceChildren(LS.el("h3", { text: `Step ${i + 1}: candidates` }), candidates(step.candidates));
    });
    line.append(span);
  });
  st.append(line, detail);
};
