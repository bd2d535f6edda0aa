// report: the views of one prompt, one section each, from one model load.
LS.views.report = function (doc, root) {
  root.append(LS.el("p", { class: "text" }, LS.el("span", { class: "muted", text: "Prompt: " }), doc.prompt || ""));
  const parts = [["inspect", "architecture"], ["tokens", "tokens"], ["next_token", "next_token"], ["layers", "layers"], ["attention", "attention"]];
  for (const [key, view] of parts) if (doc[key]) LS.views[view](Object.assign({ model: doc.model }, doc[key]), root);
};
