"""Rich rendering of an ArchitectureReport (``llmscope inspect``)."""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from llmscope.config.architecture import ArchitectureReport
from llmscope.config.kv_cache import KVCacheEstimate
from llmscope.render import fmt_bytes, fmt_count, fmt_int, kv_shape
from llmscope.config.parameters import ModuleNode


def _kv_table() -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_header=False, pad_edge=False, expand=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    table.add_column(style="dim")
    return table


def _attention_text(r: ArchitectureReport) -> str:
    if r.attention == "none":
        family = r.state_space.family if r.state_space else "recurrent"
        return f"none: {family} blocks carry a fixed-size state instead"
    if r.attention == "MHA":
        return f"MHA: {r.num_attention_heads} heads, each with its own key/value head"
    if r.attention == "MQA":
        return f"MQA: all {r.num_attention_heads} query heads share 1 key/value head"
    return (
        f"GQA: {r.num_attention_heads} query heads in {r.num_key_value_heads} groups of "
        f"{r.gqa_group_size}, one key/value head per group"
    )


def _rope_text(r: ArchitectureReport) -> str:
    if r.position_encoding != "RoPE":
        return r.position_encoding
    if isinstance(r.rope_theta, dict):
        theta = ", ".join(f"{v:,.0f} ({k.replace('_attention', '')})" for k, v in r.rope_theta.items())
    else:
        theta = f"{r.rope_theta:,.0f}" if r.rope_theta is not None else "?"
    text = f"RoPE, theta {theta}"
    if r.rope_scaling:
        kinds = {str(v.get("rope_type")) for v in r.rope_scaling.values() if isinstance(v, dict)}
        kind = r.rope_scaling.get("rope_type") or ", ".join(sorted(kinds)) or "scaled"
        factor = r.rope_scaling.get("factor")
        text += f"; scaling {kind}" + (f" x{factor}" if factor else "")
    return text


def _layer_pattern(r: ArchitectureReport) -> str | None:
    if not r.layer_types or len(set(r.layer_types)) < 2:
        if r.sliding_window and r.kind == "causal":
            return f"every layer slides over {r.sliding_window:,} tokens"
        return None
    counts: dict[str, int] = {}
    for t in r.layer_types:
        counts[t] = counts.get(t, 0) + 1
    parts = [f"{n} {t.replace('_attention', '')}" for t, n in counts.items()]
    window = f" (window {r.sliding_window:,})" if r.sliding_window else ""
    return ", ".join(parts) + window


def _shape(r: ArchitectureReport) -> Table:
    t = _kv_table()
    t.add_row("layers", fmt_int(r.num_hidden_layers), "num_hidden_layers")
    t.add_row("hidden size", fmt_int(r.hidden_size), "hidden_size (embedding width)")
    t.add_row("vocabulary", fmt_int(r.vocab_size), "vocab_size")
    t.add_row("attention", _attention_text(r), "num_attention_heads / num_key_value_heads")
    if r.head_dim is not None:
        t.add_row("head dim", fmt_int(r.head_dim), "head_dim" + (" (most layers)" if r.layer_kinds else ""))
    if r.state_space is not None:
        _state_space_rows(t, r)
    if not (r.state_space and r.state_space.family in ("Mamba", "Mamba2")):  # Mamba blocks have no MLP
        ffn = f"{fmt_int(r.intermediate_size)}, {r.mlp}" if r.intermediate_size else r.mlp
        t.add_row("feed-forward", ffn, f"intermediate_size, {r.hidden_act}" if r.hidden_act else "intermediate_size")
    norm = (r.norm or "-") + (" + QK-norm" if r.qk_norm else "")
    t.add_row("normalization", norm, "")
    t.add_row("positions", _rope_text(r), "rope_parameters" if r.position_encoding == "RoPE" else "")
    t.add_row("context length", fmt_int(r.max_position_embeddings), "max_position_embeddings")
    pattern = _layer_pattern(r)
    if pattern:
        t.add_row("attention layers", pattern, "layer_types / sliding_window")
    t.add_row("tied embeddings", "yes: the LM head reuses the embedding matrix" if r.tie_word_embeddings else "no",
              "tie_word_embeddings")
    if r.moe:
        m = r.moe
        t.add_row(
            "experts",
            f"{m.num_experts} per layer in {m.moe_layers} layers, {m.num_experts_per_tok} active per token",
            "num_experts_per_tok",
        )
        t.add_row("one expert", f"{fmt_int(m.parameters_per_expert)} parameters", "")
    return t


def _state_space_rows(t: Table, r: ArchitectureReport) -> None:
    s = r.state_space
    if s.state_size is not None:
        t.add_row("state size", fmt_int(s.state_size), "state_size (per channel)")
    if s.conv_kernel is not None:
        t.add_row("conv kernel", fmt_int(s.conv_kernel), "conv_kernel")
    if s.intermediate_size is not None:
        expand = f" (expand x{s.expand:g})" if s.expand else ""
        t.add_row("inner width", f"{fmt_int(s.intermediate_size)}{expand}", "intermediate_size / expand")
    if s.num_heads is not None:
        t.add_row("heads", f"{s.num_heads} x {s.head_dim}", "num_heads x head_dim")
    if s.n_groups is not None:
        t.add_row("groups", fmt_int(s.n_groups), "n_groups")


def _layer_kinds(r: ArchitectureReport) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Layers by kind (per-layer configs)", title_justify="left",
              title_style="bold")
    for name in ("kind", "layers", "heads", "KV heads", "head dim", "feed-forward"):
        t.add_column(name, justify="left" if name == "kind" else "right")
    for k in r.layer_kinds or []:
        t.add_row(k.layer_type.replace("_attention", ""), fmt_int(len(k.layers)), fmt_int(k.num_attention_heads),
                  fmt_int(k.num_key_value_heads), fmt_int(k.head_dim), fmt_int(k.intermediate_size))
    return t


def _parameters(r: ArchitectureReport) -> Table:
    p = r.parameters
    t = Table(box=box.SIMPLE_HEAD, title="Parameters", title_justify="left", title_style="bold")
    t.add_column("part")
    t.add_column("parameters", justify="right")
    t.add_column("share", justify="right")
    rows = [
        ("embeddings", p.embeddings),
        ("attention", p.attention),
        ("MLP", p.mlp),
        ("experts", p.experts),
        ("router", p.router),
        ("recurrent blocks", p.recurrent),
        ("norms", p.norms),
        ("LM head" if not r.tie_word_embeddings else "head (tied matrix counted once)", p.lm_head),
        ("other", p.other),
    ]
    towers = [("vision tower", p.vision), ("audio tower", p.audio), ("projector", p.projector)]
    if any(value for _, value in towers):  # a multimodal model: the rows above are its language model
        rows.append(("", 0))
        rows += towers
    for name, value in rows:
        if not name:
            t.add_section()
        elif value:
            t.add_row(name, fmt_int(value), f"{100 * value / p.total:.1f}%")
    t.add_section()
    t.add_row(Text("total", style="bold"), Text(fmt_int(p.total), style="bold"), fmt_count(p.total))
    if r.moe:
        t.add_row(
            Text("active per token", style="bold"),
            Text(fmt_int(p.active), style="bold"),
            f"{100 * p.active / p.total:.1f}%",
        )
    return t


def _memory(r: ArchitectureReport) -> RenderableType:
    t = Table(box=box.SIMPLE_HEAD, title="Memory", title_justify="left", title_style="bold")
    t.add_column("what")
    t.add_column("bytes", justify="right")
    t.add_column("note", style="dim")
    for dtype, size in r.memory.weights.items():
        note = "weights only, no quantization scales" if dtype == "int4" else ""
        t.add_row(f"weights, {dtype}", fmt_bytes(size), note)
    kv: KVCacheEstimate | None = r.memory.kv_cache
    state = r.memory.recurrent_state
    if state is not None:
        t.add_section()
        shapes = ", ".join(f"{x.name} {'x'.join(map(str, x.shape[1:]))}"
                           + ("" if x.layers == state.layers else f" (in {x.layers})") for x in state.tensors)
        t.add_row(f"recurrent state ({state.family}), {state.layers} layers", Text(fmt_bytes(state.bytes), style="bold"),
                  f"at any context, batch 1: {shapes} per layer")
        if kv is None:
            return t
    if kv is None:
        t.add_row("KV cache", "-", "encoder-only: no cache")
        return t
    t.add_section()
    t.add_row(f"KV cache per token, {kv.dtype}", fmt_bytes(kv.bytes_per_token), "while under every window")
    for g in kv.layers:
        kind = g.layer_type.replace("_attention", "")
        window = f", keeps {g.tokens_kept:,} tokens" if g.sliding_window else ""
        t.add_row(
            f"  {len(g.layers)} {kind} layers",
            fmt_bytes(g.bytes),
            f"{kv_shape(g)}{window}",
        )
    t.add_row(f"KV cache at {kv.context:,} tokens", Text(fmt_bytes(kv.bytes), style="bold"), "batch 1")
    return t


def _gguf(r: ArchitectureReport) -> RenderableType | None:
    g = r.gguf
    if g is None:
        return None
    t = Table(
        box=box.SIMPLE_HEAD,
        title=f"GGUF file: {g.file_type or '?'}, {fmt_bytes(g.file_bytes)} ({fmt_bytes(g.tensor_bytes)} of tensor data), "
              f"{g.bits_per_weight:.2f} bits per weight",
        title_justify="left",
        title_style="bold",
    )
    t.add_column("type")
    t.add_column("tensors", justify="right")
    t.add_column("weights", justify="right")
    t.add_column("stored", justify="right")
    t.add_column("bits/weight", justify="right")
    for ty in g.types:
        t.add_row(ty.type, fmt_int(ty.tensors), fmt_int(ty.elements), fmt_bytes(ty.bytes), f"{ty.bits_per_weight:.2f}")
    return t


def module_tree_renderable(node: ModuleNode) -> Tree:
    def label(n: ModuleNode) -> Text:
        text = Text(n.name, style="bold")
        text.append(f": {n.class_name}", style="cyan")
        if n.count > 1:
            text.append(f" x{n.count}", style="magenta")
        if n.parameters:
            each = " each" if n.count > 1 else ""
            text.append(f"  {fmt_int(n.parameters)}{each}", style="dim")
        if n.output_shape is not None:
            into = "×".join(map(str, n.input_shape)) if n.input_shape is not None else "?"
            text.append(f"  {into} → {'×'.join(map(str, n.output_shape))}", style="green")
        return text

    def add(tree: Tree, n: ModuleNode) -> None:
        for child in n.children:
            add(tree.add(label(child)), child)

    root = Tree(label(node))
    add(root, node)
    return root


class TitledPanel:
    """A panel whose title is cut only between whole parts: the parts that do not fit the console's
    width open the panel's body instead (and a subtitle that does not fit closes it), so every word
    shows at any width."""

    def __init__(self, body: RenderableType, parts: list[Text], subtitle: str | None = None) -> None:
        self.body, self.parts, self.subtitle = body, parts, subtitle

    def _fitted(self, width: int) -> Panel:
        room = width - 6  # "╭─ " and " ─╮"
        keep = len(self.parts)
        while keep > 1 and sum(p.cell_len for p in self.parts[:keep]) > room:
            keep -= 1
        title = Text().join(self.parts[:keep])  # each part after the first begins with its separator
        rest = list(self.parts[keep:])
        lines: list[RenderableType] = []
        if rest:
            separator = len(rest[0].plain) - len(rest[0].plain.lstrip(", "))
            rest[0] = rest[0][separator:]  # the first line of the body begins with a word
            lines.append(Text.assemble(" ", *rest))
        subtitle = self.subtitle
        if subtitle is not None and cell_len(subtitle) > room:
            lines.append(Text(f" {subtitle}", style="dim"))
            subtitle = None
        body = Group(*lines, self.body) if lines else self.body
        return Panel(body, title=title, title_align="left", subtitle=subtitle, subtitle_align="right",
                     box=box.ROUNDED)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._fitted(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self._fitted(options.max_width))


def render_architecture(r: ArchitectureReport) -> RenderableType:
    title = [Text(r.architecture, style="bold"),
             Text(f"  {r.model_type}, {'masked' if r.kind == 'masked' else 'causal'} LM", style="cyan"),
             Text(f", {fmt_int(r.parameters.total)} parameters ({fmt_count(r.parameters.total)})")]
    if r.dtype:
        title.append(Text(f", stored as {r.dtype}", style="dim"))
    parts: list[RenderableType] = [
        TitledPanel(_shape(r), title, subtitle=r.source),
        _parameters(r),
        _memory(r),
    ]
    if r.layer_kinds:
        parts.append(_layer_kinds(r))
    gguf = _gguf(r)
    if gguf is not None:
        parts.append(gguf)
    if r.modules is not None:
        parts.append(module_tree_renderable(r.modules))
        if r.module_shapes_missing:
            parts.append(Text(f"no shapes: the model's forward pass could not run on fake tensors "
                              f"({r.module_shapes_missing})", style="dim"))
        elif r.module_tokens:
            parts.append(Text(f"shapes: input → output for one sequence of {r.module_tokens} tokens (--tokens), "
                              "from a forward pass on fake tensors (shapes, no data); a folded run shows its first "
                              "block; (batch, tokens, hidden) unless a module makes it something else", style="dim"))
    return Group(*parts)
