// next-token: the prompt, the candidates for the next token as bars, and each --steps step as a token.
LS.views.next_token = function (doc, root) {
  const s = LS.section(root, "next-token", "Next token");
  LS.warnings(s, doc);
  s.append(LS.el("p", { class: "text" }, LS.el("span", { class: "muted", text: doc.prompt || "" })));
  // What the terminal shows: with sampling settings, the tempered probability, each filter's verdict, what
  // sampling draws with; greedy shows the running total.
  const sampled = doc.candidates && doc.candidates.length && doc.candidates[0].prob_sampling !== null
    && doc.candidates[0].prob_sampling !== undefined;
  const verdict = (kept) => LS.el("span", { class: kept ? "kept" : "cut", text: kept ? "kept" : "cut" });
  const head = ["rank", "token", "id", "probability", ""];
  if (sampled) {
    if (doc.temperature !== 1) head.push(`T=${doc.temperature}`);
    if (doc.top_k !== null && doc.top_k !== undefined) head.push(`top-k ${doc.top_k}`);
    if (doc.top_p !== null && doc.top_p !== undefined) head.push(`top-p ${doc.top_p}`);
    head.push("sampled");
  } else head.push("cumulative");
  const candidates = (list) => LS.table(head, (list || []).map((c) => {
    const row = [c.rank, LS.vis(c.token), c.id, LS.pct(c.prob),
      LS.el("span", { class: "bar", style: { width: Math.max(1, Math.round(240 * c.prob)) + "px" } })];
    if (sampled) {
      if (doc.temperature !== 1) row.push(LS.pct(c.prob_temperature));
      if (doc.top_k !== null && doc.top_k !== undefined) row.push(verdict(c.kept_top_k));
      if (doc.top_p !== null && doc.top_p !== undefined) row.push(verdict(c.kept_top_p));
      row.push(c.prob_sampling ? LS.pct(c.prob_sampling) : "0");
    } else row.push(LS.pct(c.cumulative_prob));
    return row;
  }), [0, 2, 3, 5]);
  s.append(candidates(doc.candidates));
  const meta = [];
  if (doc.entropy !== undefined && doc.entropy !== null) meta.push(`entropy ${LS.num(doc.entropy_bits, 2)} bits`);
  if (doc.entropy_temperature !== undefined && doc.entropy_temperature !== null) {
    meta.push(`at T=${doc.temperature}: ${LS.num(doc.entropy_temperature / Math.LN2, 2)} bits`);
  }
  if (sampled && doc.sampling_kept !== undefined) {
    meta.push(`sampling draws from ${doc.sampling_kept.toLocaleString("en")} tokens (${doc.strategy})`);
  } else meta.push(`strategy ${doc.strategy || "greedy"}`);
  s.append(LS.el("p", { class: "note", text: meta.join(" \u00b7 ") }));
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
