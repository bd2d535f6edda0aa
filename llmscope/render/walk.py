"""Rich rendering of an AttentionWalk (``llmscope attention --walk``): the steps as a short narrative,
the key table, and the walk's own check."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.forward.walk import AttentionWalk, WalkRow
from llmscope.render import visible
from llmscope.render.next_token import bar, pct


def _heads(w: AttentionWalk) -> str:
    if w.num_key_value_heads == w.num_heads:
        return f"its own keys and values (KV head {w.kv_head}: {w.num_heads} heads, {w.num_heads} KV heads)"
    share = w.heads_sharing
    others = f"heads {share[0]}-{share[-1]}" if len(share) > 1 else f"head {share[0]}"
    kind = "MQA" if w.num_key_value_heads == 1 else "GQA"
    return f"KV head {w.kv_head}, shared with {others} ({kind}: {w.num_heads} query heads, {w.num_key_value_heads} KV)"


def _positions(w: AttentionWalk, q: WalkRow) -> str:
    if w.positions == "rope":
        theta = f"theta {w.rope_theta:,.0f}" if w.rope_theta else "its theta"
        dims = "" if w.rotary_dims in (None, w.head_dim) else f", {w.rotary_dims} of {w.head_dim} dimensions"
        kept = ""
        if q.query_norm_before_rope is not None:
            kept = f"; ||q|| {q.query_norm_before_rope:.3f} before, {q.query_norm:.3f} after"
            scaled = w.rope_attention_scaling not in (None, 1.0)
            kept += (f" (a rotation keeps norms; this RoPE also multiplies by its attention factor "
                     f"{w.rope_attention_scaling:.4g})" if scaled else " (a rotation keeps norms)")
        return f"RoPE rotates q and every k by their positions ({theta}{dims}){kept}"
    if w.positions == "alibi":
        slope = f" ({w.alibi_slope:.4g} x the key's position for this head)" if w.alibi_slope is not None else ""
        return f"no rotation: ALiBi adds a bias to each key's score{slope}, so far keys weigh less"
    if w.positions == "absolute":
        return "no rotation: absolute positions were added to the embeddings before the first block"
    return "no position signal inside attention"


def _mask(w: AttentionWalk, q: WalkRow) -> str:
    hidden = sum(k.masked for k in q.keys)
    if not w.causal:
        return "bidirectional: this query sees every key" + (f" but {hidden}" if hidden else "")
    where = f"a sliding window of {w.window}" if w.window else "causal"
    return f"{where}: {hidden} later key{'s' if hidden != 1 else ''} masked (weight 0 by construction)"


def narrative(w: AttentionWalk) -> Text:
    q = w.query
    steps = [
        f"the hidden state entering attention (after the block's input norm): ||x|| = {q.hidden_norm:.3f}",
        f"q for head {w.head} ({w.head_dim} dimensions), k and v for every key; head {w.head} reads {_heads(w)}",
        _positions(w, q),
        "QK-norm normalises q and k before the scores" if w.qk_norm else "no QK-norm",
        f"score = q . k per key, times the scale {w.scale:.6g} ({w.scale_source})"
        + (f", soft-capped at {w.softcap:g} (tanh(s / cap) x cap)" if w.softcap else "")
        + f"; {_mask(w, q)}" + (f"; a learned sink logit {q.sink_logit:.3f} joins the softmax" if q.sink_logit is not None else ""),
        "softmax over the keys: the weights below sum to "
        + (f"{1 - q.sink_weight:.4f} (the sink takes {pct(q.sink_weight)})" if q.sink_weight is not None else "1"),
        f"the weighted sum of the values: the head's output, ||out|| = {q.output_norm:.3f}; weight x ||v|| shows "
        "how far each key moves it (a large weight on a small value moves little)",
        f"head {w.head}'s slice of the output projection writes a vector of norm {q.write_norm:.3f} into the block; every head's "
        f"write, plus the projection's bias if it has one, is the attention output (norm {q.attention_output_norm:.3f})",
    ]
    text = Text()
    for i, step in enumerate(steps, 1):
        text.append(f"{i}. ", style="bold")
        text.append(step + "\n")
    return text


def key_table(q: WalkRow) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Keys for the query {visible(q.token)!s} (position "
              f"{q.position})", title_justify="left", title_style="bold")
    t.add_column("#", justify="right", style="dim")
    t.add_column("key", no_wrap=True, max_width=16, overflow="ellipsis")
    t.add_column("q . k", justify="right")
    t.add_column("scaled", justify="right")
    t.add_column("weight", justify="right")
    t.add_column("", no_wrap=True, style="cyan")
    t.add_column("||v||", justify="right", style="dim")
    t.add_column("weight x ||v||", justify="right")
    for k in q.keys:
        if k.masked:
            t.add_row(str(k.position), Text(visible(k.token), style="dim"), f"{k.score:.3f}", Text("masked", style="dim"),
                      Text("0", style="dim"), "", f"{k.value_norm:.3f}", Text("0", style="dim"))
            continue
        t.add_row(str(k.position), visible(k.token), f"{k.score:.3f}", f"{k.scaled:.3f}", pct(k.weight),
                  bar(k.weight, 10), f"{k.value_norm:.3f}", f"{k.weighted_value_norm:.3f}")
    return t


def check_line(w: AttentionWalk) -> Text:
    c = w.check
    good = max(c.weights_max_abs_error, c.output_max_abs_error) < 1e-4
    text = Text("check: ", style="bold green" if good else "bold red")
    text.append(f"recomputed weights vs the model's eager attention: max |diff| {c.weights_max_abs_error:.1e}; "
                f"head outputs and attention output vs the model's: {c.output_max_abs_error:.1e}", style="dim")
    return text


def render_walk(w: AttentionWalk) -> RenderableType:
    head = Text()
    head.append(f"Attention walk: layer {w.layer}", style="bold")
    if w.layer_type:
        head.append(f" ({w.layer_type.replace('_', ' ')})", style="dim")
    head.append(f", head {w.head} of {w.num_heads}, query {visible(w.query.token)} (position {w.query.position})",
                style="bold")
    head.append(f"\n  {w.model}", style="dim")
    return Group(head, narrative(w), key_table(w.query), check_line(w))
