// tokenize: the text cut into tokens; hover a token for its id, piece and character offsets.
LS.views.tokens = function (doc, root) {
  const palette = ["#cfe2f3", "#e1d5e7", "#d5e8d4", "#fff2cc", "#f8cecc", "#dae8fc"];
  const s = LS.section(root, "tokens", `${doc.num_tokens} tokens, ${doc.num_characters} characters` +
    (doc.characters_per_token ? ` (${Number(doc.characters_per_token).toFixed(2)} characters per token)` : ""));
  LS.warnings(s, doc);
  const text = LS.el("div", { class: "text", id: "token-text" });
  const added = new Map((doc.added_special_tokens || []).map((a) => [a.position, a]));
  (doc.ids || []).forEach((id, i) => {
    const piece = (doc.pieces || [])[i] ?? (doc.tokens || [])[i] ?? "";
    const off = (doc.offsets || [])[i];
    const special = (doc.special_tokens_mask || [])[i] === 1;
    const why = added.get(i);
    const title = `#${i} id ${id} ${JSON.stringify((doc.tokens || [])[i] ?? piece)}` +
      (off ? ` chars ${off[0]}-${off[1]}` : "") + (why ? ` - added: ${why.reason || why.role || ""}` : "");
    const span = LS.token(piece === "" ? (doc.tokens || [])[i] : piece, null,
      { class: "tok" + (special ? " special" : ""), title, "data-i": i, "data-id": id });
    span.style.background = palette[i % palette.length];
    span.style.color = "#111";
    text.append(span);
  });
  s.append(text);
  s.append(LS.el("h3", { text: "Tokens" }));
  s.append(LS.table(["#", "id", "token", "text", "chars"], (doc.ids || []).map((id, i) => {
    const off = (doc.offsets || [])[i];
    return [i, id, (doc.tokens || [])[i] ?? "", LS.vis((doc.pieces || [])[i] ?? ""), off ? `${off[0]}-${off[1]}` : "-"];
  }), [0, 1]));
};
