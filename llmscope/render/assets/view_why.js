// why: the prompt coloured by each unit's share of f (hover a unit for its value), a unit switch where the
// page holds token-level values (gradient methods: LS.extra.by_unit), the top units and the checks; with
// --generate, the matrix (rows: generated tokens) with a row select that recolours the text.
LS.whyMethods = { "grad-x-input": "gradient x input", "integrated-gradients": "integrated gradients", occlusion: "occlusion" };

LS.whyText = function (units, id) {
  const scale = Math.max(1e-30, ...units.filter((u) => u.attribution !== null).map((u) => Math.abs(u.attribution)));
  const line = LS.el("div", { class: "text", id });
  units.forEach((u, i) => {
    const span = LS.el("span", { class: "tok", tabindex: "0", "data-i": i,
      title: u.special ? `${LS.quote(u.text)}: special token, held fixed (not attributed)`
        : `${LS.quote(u.text)}: ${u.attribution >= 0 ? "+" : ""}${u.attribution.toFixed(4)} nats` +
          (u.first ? " (the first token: an attention sink)" : "") + `; token ids ${u.token_ids.join(", ")}` }, LS.vis(u.text));
    if (u.special) span.classList.add("special");
    else { const v = u.attribution / scale; span.style.background = LS.signed(v); span.style.color = LS.signedInk(v); }
    span.addEventListener("mouseenter", () => LS.info(span.title));
    span.addEventListener("focus", () => LS.info(span.title));
    line.append(span);
  });
  return line;
};

LS.whyTop = function (units, by) {
  const scored = units.filter((u) => u.attribution !== null);
  const total = scored.reduce((a, u) => a + Math.abs(u.attribution), 0) || 1;
  const rows = scored.slice().sort((a, b) => Math.abs(b.attribution) - Math.abs(a.attribution)).slice(0, 10)
    .map((u, k) => [k + 1, (LS.vis(u.text.trim()) || LS.vis(u.text) || "\u2205") + (u.first ? " (first token)" : ""),
      (u.attribution >= 0 ? "+" : "") + u.attribution.toFixed(4), LS.pct(Math.abs(u.attribution) / total)]);
  const t = LS.table(["#", by, "attribution", "share of |total|"], rows, [0, 2, 3]);
  t.id = "why-top";
  return t;
};

LS.whyChecks = function (doc) {
  const sum = doc.units.filter((u) => u.attribution !== null).reduce((a, u) => a + u.attribution, 0);
  const rows = [["f(x)", `${doc.f.toFixed(4)} nats`]];
  if (doc.f_baseline !== null) rows.push(["f(baseline)", doc.f_baseline.toFixed(4)], ["f(x) - f(baseline)", (doc.f - doc.f_baseline).toFixed(4)]);
  rows.push(["sum of attributions", sum.toFixed(4)]);
  if (doc.gap !== null) {
    const share = Math.abs(doc.gap) / Math.abs(doc.f - doc.f_baseline);
    rows.push(["completeness gap", `${doc.gap.toFixed(4)} (${LS.pct(share)} of the difference): ` +
      (doc.converged ? "converged (within 5%)" : "NOT CONVERGED: these numbers are not a decomposition; try more --steps or another --baseline")]);
  }
  rows.push(["check", `|f through inputs_embeds - f through input_ids| = ${doc.check.toExponential(2)}`]);
  const t = LS.table(["", ""], rows);
  t.id = "why-checks";
  t.querySelector("thead").remove();
  if (doc.converged === false) t.classList.add("warning");
  return t;
};

LS.views.why = function (doc, root) {
  const what = LS.whyMethods[doc.method] + (doc.n_steps ? `, ${doc.n_steps} steps` : "") +
    (doc.baseline !== null ? `, baseline ${LS.quote(doc.baseline)}` : "") + `, ${doc.dtype}`;
  const title = doc.steps ? `Why ${LS.quote(doc.target)}, token by token?` : `Why ${LS.quote(doc.target)}?` +
    (doc.versus !== null ? ` rather than ${LS.quote(doc.versus)}` : "");
  const s = LS.section(root, "why", title);
  LS.warnings(s, doc);
  s.append(LS.el("p", { class: "note", text: what + (doc.steps ? "; f = log p(token | prompt and the tokens before it)" : doc.versus !== null ? "; f = log p(target) - log p(versus)" : "; f = log p(target | prompt)") + ", in nats" }));
  s.append(LS.legend("share of f", "away from the target", "towards it", LS.signed));
  if (doc.steps) return LS.whySteps(doc, s);
  const byUnit = LS.extra.by_unit || {};
  const holder = LS.el("div", {});
  const draw = (by) => {
    const units = by === doc.by ? doc.units : byUnit[by];
    holder.replaceChildren(LS.whyText(units, "why-text"), LS.el("h3", { text: "Top units" }), LS.whyTop(units, by));
  };
  const choices = Object.keys(byUnit).length ? Object.keys(byUnit) : [doc.by];
  const select = LS.el("select", { id: "why-by", onchange: (e) => draw(e.target.value) },
    choices.map((b) => LS.el("option", { value: b, selected: b === doc.by, text: b })));
  s.append(LS.el("div", { class: "controls" }, LS.el("label", {}, "unit ", select),
    choices.length === 1 ? LS.el("span", { class: "note", text: "occlusion replaces whole units: other units need another run" }) : null));
  s.append(holder);
  draw(doc.by);
  s.append(LS.el("h3", { text: "Checks" }), LS.whyChecks(doc));
};

LS.whySteps = function (doc, s) {
  const holder = LS.el("div", {});
  const draw = (k) => {
    const step = doc.steps[k];
    holder.replaceChildren(LS.el("p", { class: "note", text: `row ${k}: ${LS.quote(step.token)}, f = ${step.f.toFixed(4)}` +
      (step.gap !== null ? `, gap ${step.gap.toFixed(4)} (${step.converged ? "converged" : "NOT CONVERGED"})` : "") }),
      LS.whyText(step.units, "why-text"));
  };
  const select = LS.el("select", { id: "why-row", onchange: (e) => draw(Number(e.target.value)) },
    doc.steps.map((st, k) => LS.el("option", { value: k, text: `${k}: ${LS.vis(st.token)}` })));
  s.append(LS.el("div", { class: "controls" }, LS.el("label", {}, "generated token ", select)), holder);
  draw(0);
  const cols = doc.units;
  const rows = doc.steps.map((st) => {
    const scale = Math.max(1e-30, ...st.units.filter((u) => u.attribution !== null).map((u) => Math.abs(u.attribution)));
    return [LS.vis(st.token), st.f.toFixed(2), ...cols.map((_, c) => {
      const u = st.units[c];
      if (!u) return "";
      if (u.attribution === null) return LS.el("span", { class: "special", text: "\u00b7" });
      return LS.el("span", { class: "tok", title: `${LS.quote(st.token)} <- ${LS.quote(u.text)}: ${u.attribution.toFixed(4)}`,
        style: { background: LS.signed(u.attribution / scale), color: LS.signedInk(u.attribution / scale) }, text: u.attribution.toFixed(2) });
    })];
  });
  const t = LS.table(["token", "f", ...cols.map((u) => LS.short(u.text.trim() || u.text, 8))], rows);
  t.id = "why-matrix";
  s.append(LS.el("h3", { text: "Each generated token (row) explained by the units before it" }), t);
  s.append(LS.el("p", { class: "note", text: `total log p(generation) = ${doc.f.toFixed(4)} nats; check: |f through inputs_embeds - f through input_ids| <= ${doc.check.toExponential(2)}` }));
};
