// tokenize: the text cut into tokens; hover a token for its id, piece and character offsets.
LS.views.tokens = function (doc, root) {
  const palette = ["#cfe2f3", "#e1d5e7", "#d5e8d4", "#fff2cc", "#f8cecc", "#dae8fc"];
  const s = LS.section(root, "tokens", LS.tokenTotals(doc));
  LS.warnings(s, doc);
  const text = LS.el("div", { class: "text", id: "token-text" });
  const added = new Map((doc.added_special_tokens || []).map((a) => [a.position, a]));
  (doc.ids || []).forEach((id, i) => {
    const piece = (doc.pieces || [])[i] ?? (doc.tokens || [])[i] ?? "";
    const off = (doc.offsets || [])[i];
    const special = (doc.special_tokens_mask || [])[i] === 1;
    const why = added.get(i);
    const title = `#${i} id ${id} ${LS.quote((doc.tokens || [])[i] ?? piece)}` +
      (off ? ` chars ${off[0]}-${off[1]}` : "") + (why ? ` - added: ${why.reason || why.role || ""}` : "");
    const span = LS.token(piece === "" ? (doc.tokens || [])[i] : piece, null,
      { class: "tok" + (special ? " special" : ""), title, "data-i": i, "data-id": id });
    span.style.background = palette[i % palette.length];
    span.style.color = "#111";
    text.append(span);
  });
  s.append(text);
  const key = (mark, what) => LS.el("span", { style: { marginRight: "14px" } }, LS.el("b", { text: mark }), " " + what);
  s.append(LS.el("p", { class: "note", id: "token-legend" }, key("\u00b7", "space"), key("\u21b5", "newline"),
    key("\u2192", "tab"), LS.el("span", { class: "tok special", style: { marginRight: "14px" }, text: "special" }),
    key("\\u\u2026", "a character no installed font draws, escaped")));
  s.append(LS.el("h3", { text: "Tokens" }));
  s.append(LS.table(["#", "id", "token", "piece", "", "chars"], (doc.ids || []).map((id, i) => {
    const off = (doc.offsets || [])[i];
    return [i, id, LS.vis((doc.tokens || [])[i] ?? ""), LS.vis((doc.pieces || [])[i] ?? ""),
      added.has(i) ? LS.el("span", { class: "muted", text: "added" }) : "", off ? `${off[0]}-${off[1]}` : "-"];
  }), [0, 1, 5]));
  const notes = LS.el("div", { class: "note", id: "token-added" });
  if (doc.chat) notes.append(LS.el("p", { text: "No special tokens added: the chat template writes its own." }));
  else if (doc.add_special_tokens === false) notes.append(LS.el("p", { text: "Special tokens not added (--no-add-special-tokens)." }));
  else if (!(doc.added_special_tokens || []).length) notes.append(LS.el("p", { text: "The tokenizer adds no special tokens to this text." }));
  for (const a of doc.added_special_tokens || []) {
    notes.append(LS.el("p", {}, LS.el("span", { class: "tok special", text: LS.vis(a.token) }),
      ` (id ${a.id}, position ${a.position}${a.role ? ", " + a.role : ""}): ${a.reason || ""}`));
  }
  s.append(notes);
};

// The totals line, in the terminal's words: characters per token counts the tokens cut from the text,
// not the special tokens the tokenizer added; where there are any, the division is shown.
LS.tokenTotals = function (doc) {
  const n = (x) => Number(x).toLocaleString("en");
  const plural = (x, word) => `${n(x)} ${word}${x === 1 ? "" : "s"}`;
  const added = (doc.added_special_tokens || []).length, fromText = doc.num_tokens - added;
  const cpt = doc.characters_per_token;
  const known = cpt !== null && cpt !== undefined;
  return plural(doc.num_tokens, "token") + (added ? ` (${n(fromText)} from the text + ${n(added)} added)` : "") +
    ` \u00b7 ${plural(doc.num_characters, "character")}` + (added && known
      ? ` / ${n(fromText)} = ${Number(cpt).toFixed(2)} per text token`
      : ` \u00b7 ${known ? Number(cpt).toFixed(2) : "-"} characters per token`);
};
