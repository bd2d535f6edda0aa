"""Rich rendering of a MemoryReport (``llmscope memory``)."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.memory.report import MemoryReport
from llmscope.memory.placement import DevicePlacement
from llmscope.render import fmt_bytes, fmt_count, fmt_int, kv_shape


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    if not values:
        return "-"
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def _needs(r: MemoryReport) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Memory needed", title_justify="left", title_style="bold")
    t.add_column("what")
    t.add_column("bytes", justify="right")
    t.add_column("note", style="dim")
    p = r.parameters
    note = f"{fmt_int(p.total)} parameters"
    if p.num_experts:
        note = (
            f"all {p.num_experts} experts resident: {fmt_count(p.total)} parameters; "
            f"{fmt_count(p.active)} active per token ({p.num_experts_per_tok} experts)"
        )
    t.add_row(f"weights, {r.weights.dtype}", fmt_bytes(r.weights.bytes), note)
    if r.weights.gguf is not None:
        g = r.weights.gguf
        t.add_row(
            f"  GGUF file, {g.file_type or '?'}",
            fmt_bytes(g.file_bytes),
            f"on disk; tensor data {fmt_bytes(g.tensor_bytes)}, {g.bits_per_weight:.2f} bits/weight",
        )
        for ty in g.types:
            t.add_row(f"    {ty.type}", fmt_bytes(ty.bytes), f"{fmt_int(ty.tensors)} tensors, {ty.bits_per_weight:.2f} bits")
    kv = r.kv_cache
    t.add_section()
    if r.recurrent_state is not None:
        st = r.recurrent_state
        note = f"{'no KV cache; ' if kv is None else ''}the same at any context, batch {st.batch}"
        t.add_row(f"recurrent state ({st.family}), {st.layers} layers", fmt_bytes(st.bytes), note)
        for x in st.tensors:
            held = "" if x.layers == st.layers else f", in {x.layers} layers"
            t.add_row(f"  {x.name}", fmt_bytes(x.bytes * x.layers), f"{' x '.join(map(str, x.shape))}, {x.dtype}{held}")
    elif kv is None:
        t.add_row("KV cache", "-", "encoder-only: no cache")
    if kv is not None:  # a hybrid has both
        t.add_row(
            f"KV cache per token, {kv.dtype}",
            fmt_bytes(kv.bytes_per_token),
            "under every window",
        )
        for g in kv.layers:
            kind = g.layer_type.replace("_attention", "")
            window = f", keeps {g.tokens_kept:,} (window {g.sliding_window:,})" if g.sliding_window else ""
            t.add_row(
                f"  {len(g.layers)} {kind} layers",
                fmt_bytes(g.bytes),
                f"{kv_shape(g)}{window}",
            )
        t.add_row(f"KV cache at {kv.context:,} tokens", fmt_bytes(kv.bytes), f"batch {kv.batch}")
    t.add_section()
    _transient(t, r)
    t.add_section()
    t.add_row(Text("total", style="bold"), Text(fmt_bytes(r.needed_bytes), style="bold"), "")
    m = r.measurement
    if m is not None:
        how = "peak RSS" if m.device == "cpu" else "allocated"  # the CPU's is coarser: see llmscope.memory.measure
        how += f" (median of {len(m.runs)})" if len(m.runs) > 1 else (" (coarse)" if m.device == "cpu" else "")
        ratio = m.bytes / r.needed_bytes if r.needed_bytes else 0.0
        t.add_row(Text(f"measured, {m.device}", style="bold"), Text(fmt_bytes(m.bytes), style="bold"),
                  f"{ratio:.2f}x; {how}")
    return t


def _transient(t: Table, r: MemoryReport) -> None:
    """The transient memory at the prefill's peak, one row per tensor kind."""
    t.add_row(
        f"transient, for {r.mode}",
        fmt_bytes(r.transient_bytes),
        f"peak: {r.transient_peak or '?'} ({r.attn_implementation or '?'})",
    )
    for name, size in r.transient.items():  # the names of --json's "transient"
        t.add_row(f"  {name}", fmt_bytes(size), r.transient_shapes.get(name, ""))


def _verdict(r: MemoryReport) -> Text:
    where = "this machine" if r.budget_from_machine else "the budget"
    budget = ", ".join(f"{b.device} {fmt_bytes(b.bytes)}" for b in r.budget)
    text = Text()
    if r.fits:
        text.append("Fits", style="bold green")
        spilled = [p for p in r.placement or [] if p.device == "cpu" and p.weights_bytes]
        if spilled:
            text.append(f" (with {fmt_bytes(spilled[0].weights_bytes)} of weights on the CPU: slow)", style="yellow")
    else:
        text.append("Does not fit", style="bold red")
    text.append(f" in {where} ({budget}): headroom {fmt_bytes(r.headroom_bytes)}.")
    if r.max_context is not None:
        cap = ""
        if r.max_position_embeddings and r.max_context == r.max_position_embeddings:
            cap = ", the model's maximum"
        text.append(f"\nLongest context for {r.mode} at batch {r.batch}: ")
        text.append(f"{fmt_int(r.max_context)} tokens{cap}", style="bold")
        if r.placement is not None:
            text.append(" (placed anew at each length)", style="dim")
        text.append(".")
    return text


def _placement(rows: list[DevicePlacement]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Placement (accelerate)", title_justify="left", title_style="bold")
    t.add_column("device")
    t.add_column("layers")
    t.add_column("bytes", justify="right")
    t.add_column("budget", justify="right")
    t.add_column("of which", style="dim")
    for p in rows:
        extra = [m for m in p.modules if not any(m.endswith(f".{i}") for i in p.layers)]
        layers = _ranges(p.layers)
        if extra:
            layers += " + " + ", ".join(m.rsplit(".", 1)[-1] or "all" for m in extra)
        of = f"KV {fmt_bytes(p.kv_cache_bytes)}" if p.kv_cache_bytes else ""
        if p.transient_bytes:
            of += (", " if of else "") + f"transient {fmt_bytes(p.transient_bytes)}"
        style = "red" if p.device == "disk" else ("yellow" if p.device == "cpu" else "")
        t.add_row(Text(p.device, style=style), layers, fmt_bytes(p.bytes), fmt_bytes(p.budget), of)
    return t


def render_memory(r: MemoryReport) -> RenderableType:
    head = Text()
    head.append(r.architecture, style="bold")
    head.append(f"  {r.model_type}, {r.num_hidden_layers} layers", style="cyan")
    head.append(f"  {r.source}", style="dim")
    parts: list[RenderableType] = [head, _needs(r)]
    if r.placement is not None:
        parts.append(_placement(r.placement))
    parts.append(_verdict(r))
    return Group(*parts)
