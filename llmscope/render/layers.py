"""Rich rendering of a LayerReport (``llmscope layers``)."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.forward.layers import KVCache, LayerReport
from llmscope.render import fmt_bytes, visible
from llmscope.render.next_token import bar, pct


def prob_style(prob: float) -> str:
    """Colour by probability: dim grey (unsure) through yellow to bold green (sure)."""
    if prob >= 0.5:
        return "bold black on green"
    if prob >= 0.2:
        return "black on yellow"
    if prob >= 0.05:
        return "white on dark_orange3"
    return "dim"


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 10 else f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"


def _short(token: str, width: int = 8) -> str:
    text = visible(token) or "∅"
    return text if len(text) <= width else text[: width - 1] + "…"


def layer_table(r: LayerReport) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Layers (logit lens at the focus token)",
              title_justify="left", title_style="bold")
    t.add_column("layer", no_wrap=True)
    t.add_column("shape", no_wrap=True, style="dim")
    t.add_column("norm", justify="right")
    t.add_column("Δ", justify="right")
    t.add_column("cos", justify="right", style="dim")
    t.add_column("lens", no_wrap=True, max_width=14, overflow="ellipsis")
    t.add_column("prob", justify="right")
    t.add_column("", no_wrap=True, style="cyan")
    previous = None
    for row in r.layers:
        name = "embed" if row.index == 0 else str(row.index - 1)
        lens = Text(_short(row.lens.token, 14), style="bold" if row.lens.id != previous else "")
        t.add_row(
            name,
            "×".join(str(s) for s in row.shape),
            _num(row.norm),
            _num(row.delta_norm) if row.delta_norm is not None else "-",
            f"{row.cosine_to_previous:.2f}" if row.cosine_to_previous is not None else "-",
            lens,
            pct(row.lens.prob),
            bar(row.lens.prob, 8),
        )
        previous = row.lens.id
    return t


def grid_table(r: LayerReport) -> Table | None:
    if r.grid is None:
        return None
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Logit lens at every position",
              title_justify="left", title_style="bold")
    t.add_column("layer", no_wrap=True, style="dim")
    for i, token in enumerate(r.tokens):
        t.add_column(Text(_short(token, 6), style="cyan"), no_wrap=True, overflow="ellipsis", min_width=3)
        del i
    for index, cells in enumerate(r.grid):
        name = "embed" if index == 0 else str(index - 1)
        t.add_row(name, *[Text(_short(c.token, 6), style=prob_style(c.prob)) for c in cells])
    return t


def legend() -> Text:
    text = Text("probability: ", style="dim")
    for label, p in (("≥50%", 0.5), ("≥20%", 0.2), ("≥5%", 0.05), ("<5%", 0.0)):
        text.append(f" {label} ", style=prob_style(p))
        text.append(" ")
    return text


def cache_table(kv: KVCache) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"KV cache ({kv.cache_class}, {kv.dtype})",
              title_justify="left", title_style="bold")
    t.add_column("layers", no_wrap=True)
    t.add_column("type", style="dim")
    axes = "×".join(a.replace("kv_heads", "KV heads") for a in kv.axes)
    t.add_column(f"key ({axes})", no_wrap=True)
    t.add_column("value", no_wrap=True)
    t.add_column("bytes each", justify="right")
    groups: list[list] = []
    for layer in kv.layers:
        key = (layer.layer_type, tuple(layer.key_shape), tuple(layer.value_shape), layer.bytes)
        if groups and groups[-1][0] == key and groups[-1][2] == layer.layer - 1:
            groups[-1][2] = layer.layer
        else:
            groups.append([key, layer.layer, layer.layer])
    for (kind, kshape, vshape, size), first, last in groups:
        t.add_row(
            str(first) if first == last else f"{first}-{last}",
            (kind or "").replace("_attention", ""),
            "×".join(map(str, kshape)),
            "×".join(map(str, vshape)),
            fmt_bytes(size),
        )
    t.add_section()
    t.add_row(Text("total", style="bold"), "", "", "", Text(fmt_bytes(kv.bytes), style="bold"))
    return t


def head_line(r: LayerReport) -> Text | None:
    """The pipeline's last step: the head's logits, the row taken, its argmax (the model's next token)."""
    h = r.head_output
    if h is None:
        return None
    shape = "×".join(f"{n:,}" for n in h.shape)
    text = Text()
    text.append("LM head", style="bold")
    text.append(f": logits {shape} (batch, tokens, vocab)")
    if h.computed != h.shape:
        text.append(f"; this run computed only the row it needs, {'×'.join(f'{n:,}' for n in h.computed)}, "
                    "as generate does", style="dim")
    where = "the last token" if h.position == len(r.input_ids) - 1 else "the mask"
    text.append(f"\nrow {h.position} ({where}) → argmax ", style="dim")
    text.append(f"{visible(h.prediction.token)}", style="bold cyan")
    text.append(f" (id {h.prediction.id}, {pct(h.prediction.prob)})", style="dim")
    return text


def render_layers(r: LayerReport) -> RenderableType:
    head = Text()
    head.append(r.model, style="bold")
    head.append(f"  {len(r.input_ids)} tokens, {len(r.layers) - 1} layers, {r.dtype}", style="dim")
    head.append("\nfocus token: ", style="dim")
    head.append(f"{visible(r.tokens[r.position])} (position {r.position})", style="cyan")
    lens = f"lens: {r.final_norm + ' + ' if r.final_norm else ''}{r.lm_head}"
    if r.softcapping:
        lens += f" + softcapping {r.softcapping:g}"
    head.append(f"\n{lens}; shape is (batch, tokens, hidden), norm and Δ at the focus token", style="dim")
    parts: list[RenderableType] = [head, layer_table(r)]
    line = head_line(r)
    if line is not None:
        parts.append(line)
    grid = grid_table(r)
    if grid is not None:
        parts += [grid, legend()]
    if r.kv_cache is not None:
        parts.append(cache_table(r.kv_cache))
    else:
        parts.append(Text("KV cache: none (an encoder sees the whole text at once)", style="dim"))
    return Group(*parts)
