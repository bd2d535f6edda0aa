"""``attention --walk``: one head's attention computed step by step from the model's own tensors.

During one forward pass ``forward/eager.py`` records the chosen layer's queries, keys and values where
transformers hands them to eager attention (after the projections, QK-norm and RoPE). The walk then
recomputes the head by hand: ``q . k``, the
scale, the soft-cap, the mask, the sink, the softmax, the weighted sum of the values and the head's slice
of the output projection, and checks itself against the model: the weights eager attention returned, the
heads' outputs it returned, and the output projection's own output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError
from llmscope.forward.eager import Recorded, recording

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


@dataclasses.dataclass(frozen=True)
class WalkKey:
    """One key position of the walked query's row."""

    position: int
    token: str
    score: float  # q . k, after RoPE and QK-norm
    scaled: float  # what enters the softmax: score x scale, soft-capped, plus any bias; -inf when masked
    masked: bool
    weight: float
    value_norm: float  # ||v|| of this key
    weighted_value_norm: float  # weight x ||v||: how far this key moves the head's output


@dataclasses.dataclass(frozen=True)
class WalkRow:
    """The walk of one query token."""

    position: int
    token: str
    hidden_norm: float  # the hidden state entering attention (after the block's input norm)
    query_norm: float  # ||q|| as the scores use it (after QK-norm and RoPE)
    query_norm_before_rope: float | None  # ||q|| before RoPE (None where the projection is not separate)
    keys: list[WalkKey]
    sink_logit: float | None
    sink_weight: float | None  # the share of the row the sink takes (1 - the weights' sum)
    output_norm: float  # ||the head's output|| at this query
    write_norm: float  # ||this head's slice of the output projection applied to its output||
    attention_output_norm: float  # ||the attention output|| here: every head's write, plus the bias


@dataclasses.dataclass(frozen=True)
class WalkCheck:
    weights_max_abs_error: float  # the recomputed weights against the ones eager attention returned
    output_max_abs_error: float  # the recomputed head outputs and attention output against the model's


@dataclasses.dataclass(frozen=True)
class HeadView:
    """Every query token's walk of one (layer, head): what the page's layer and head selects show."""

    layer: int
    head: int
    kv_head: int
    layer_type: str | None
    rows: list[WalkRow]


@dataclasses.dataclass(frozen=True)
class AttentionWalk:
    model: str
    tokens: list[str]
    layer: int
    layer_type: str | None
    head: int
    kv_head: int
    heads_sharing: list[int]  # the query heads that read this KV head (GQA / MQA)
    num_heads: int
    num_key_value_heads: int
    head_dim: int
    scale: float
    scale_source: str
    softcap: float | None
    window: int | None
    positions: str  # "rope", "alibi", "absolute" or "none"
    rope_theta: float | None
    rotary_dims: int | None  # dimensions RoPE rotates (fewer than head_dim with partial rotary)
    rope_attention_scaling: float | None  # what RoPE also multiplies q and k by (YaRN's attention factor); 1: none
    alibi_slope: float | None  # ALiBi: this head's bias grows by this much per key position
    qk_norm: bool
    causal: bool
    query: WalkRow  # the walked query
    rows: list[WalkRow]  # every query token of the prompt (the page's query select)
    check: WalkCheck
    warnings: list[str] = dataclasses.field(default_factory=list)
    views: list[HeadView] = dataclasses.field(default_factory=list)  # other layers and heads (the page)
    views_note: str | None = None  # what the page leaves out, when the prompt is too long for every head

    def to_json(self) -> dict[str, Any]:
        q = self.query
        walk = {
            "layer": self.layer, "layer_type": self.layer_type, "head": self.head, "kv_head": self.kv_head,
            "heads_sharing": self.heads_sharing, "num_heads": self.num_heads,
            "num_key_value_heads": self.num_key_value_heads, "head_dim": self.head_dim,
            "query": {"position": q.position, "token": q.token}, "scale": self.scale,
            "scale_source": self.scale_source, "softcap": self.softcap, "window": self.window,
            "positions": self.positions, "rope_theta": self.rope_theta, "rotary_dims": self.rotary_dims,
            "rope_attention_scaling": self.rope_attention_scaling, "alibi_slope": self.alibi_slope,
            "qk_norm": self.qk_norm, "causal": self.causal, "hidden_norm": q.hidden_norm,
            "query_norm": q.query_norm, "query_norm_before_rope": q.query_norm_before_rope,
            "keys": q.keys, "sink_logit": q.sink_logit, "sink_weight": q.sink_weight,
            "output_norm": q.output_norm, "write_norm": q.write_norm,
            "attention_output_norm": q.attention_output_norm, "check": self.check,
        }
        return {"model": self.model, "tokens": self.tokens, "walk": walk, "queries": self.rows,
                "views": self.views, "views_note": self.views_note, "warnings": self.warnings}


# --------------------------------------------------------------------------------------------
# The recomputation


def masked_where(mask: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor:
    """(tokens, tokens) booleans: True where the additive mask forbids the key (transformers writes the
    dtype's minimum, or -inf, there)."""
    import torch

    if mask is None:
        return torch.zeros(shape, dtype=torch.bool)
    m = mask[0, 0].float().cpu()
    return (m <= torch.finfo(mask.dtype).min / 2) | torch.isinf(m)


def head_scores(seen: Recorded, head: int, groups: int, sink: float | None) -> dict[str, torch.Tensor]:
    """HEAD's whole (query, key) computation in float64, from the recorded q, k, v and mask."""
    import torch

    q = seen.query[0, head].double().cpu()  # (tokens, head_dim)
    k = seen.key[0, head // groups].double().cpu()  # (tokens, head_dim)
    v = seen.value[0, head // groups].double().cpu()  # (tokens, value dim)
    scale = seen.scaling if seen.scaling is not None else q.shape[-1] ** -0.5
    score = q @ k.T  # (tokens, tokens)
    scaled = score * scale
    if seen.softcap:
        scaled = torch.tanh(scaled / seen.softcap) * seen.softcap
    if seen.bias is not None:
        scaled = scaled + seen.bias[head].double().cpu()  # (1 or tokens, tokens)
    if seen.mask is not None:
        bias = seen.mask[0, head if seen.mask.shape[1] > 1 else 0].double().cpu()
        scaled = scaled + torch.where(torch.isinf(bias) | (bias <= torch.finfo(seen.mask.dtype).min / 2),
                                      torch.zeros_like(bias), bias)
    masked = masked_where(seen.mask, tuple(score.shape))
    scaled = scaled.masked_fill(masked, float("-inf"))
    logits = scaled if sink is None else torch.cat([scaled, torch.full((scaled.shape[0], 1), sink,
                                                                        dtype=scaled.dtype)], dim=-1)
    weights = torch.softmax(logits, dim=-1)[:, : scaled.shape[1]]  # the sink's share dropped, as the model does
    return {"q": q, "k": k, "v": v, "score": score, "scaled": scaled, "masked": masked, "weights": weights,
            "output": weights @ v, "scale": torch.tensor(scale)}


def head_write(o_proj: nn.Module, outputs: torch.Tensor, head: int) -> torch.Tensor:
    """(tokens, hidden): what HEAD alone writes through the output projection, its bias left out: the
    projection of the heads' outputs (tokens, heads, value dim) with every other head zeroed, minus the
    projection of zeros."""
    import torch

    alone = torch.zeros_like(outputs)
    alone[:, head] = outputs[:, head]
    param = next(o_proj.parameters())
    flat = alone.reshape(outputs.shape[0], -1).to(device=param.device, dtype=param.dtype)
    with torch.inference_mode():
        return (o_proj(flat) - o_proj(torch.zeros_like(flat))).double().cpu()


def norm(x: Any) -> float:
    import torch

    return float(torch.linalg.vector_norm(x.double()))


def finite(x: float) -> float:
    return x if math.isfinite(x) else float("-inf")


# --------------------------------------------------------------------------------------------
# What the model says about itself


def positions_of(model: nn.Module, config: Any, parts: Any, layer_type: str | None, head_dim: int
                 ) -> tuple[str, float | None, int | None]:
    """How positions enter: ("rope", theta, rotated dims), ("alibi", ...), ("absolute", ...) or ("none", ...)."""
    if parts.positional_embedding is not None:
        return "absolute", None, None  # added to the embeddings before the first block
    if getattr(config, "alibi", False) or config.model_type in ("bloom", "mpt"):
        return "alibi", None, None
    rope = getattr(config, "rope_parameters", None) or {}
    if rope and all(isinstance(v, dict) for v in rope.values()):  # one set per layer type (Gemma 3)
        rope = rope.get(layer_type or "", None) or rope.get("full_attention") or next(iter(rope.values()))
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    rotary = any(name.endswith("rotary_emb") for name, _ in model.named_modules())
    if theta is None and not rotary:
        return "none", None, None
    dims = getattr(config, "qk_rope_head_dim", None)  # MLA: a rotated part beside a position-free one
    factor = rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None))
    if dims is None:
        dims = int(head_dim * factor) if factor else head_dim
    return "rope", (float(theta) if theta is not None else None), int(dims)


def rope_scaling(model: nn.Module) -> float | None:
    """The factor a rotary embedding multiplies cos and sin by (``attention_scaling``: YaRN's mscale), or None."""
    for name, module in model.named_modules():
        if name.endswith("rotary_emb") and getattr(module, "attention_scaling", None) is not None:
            return float(module.attention_scaling)
    return None


def scale_source(scale: float, config: Any, head_dim: int) -> str:
    """Where the scale comes from, in the config's words."""
    scalar = getattr(config, "query_pre_attn_scalar", None)
    if scalar and math.isclose(scale, float(scalar) ** -0.5, rel_tol=1e-6):
        return f"1/sqrt(query_pre_attn_scalar), query_pre_attn_scalar = {scalar:g}"
    if math.isclose(scale, head_dim ** -0.5, rel_tol=1e-6):
        return f"1/sqrt(head_dim), head_dim = {head_dim}"
    if math.isclose(scale, 1.0):
        return "1: the model does not divide the scores"
    return f"the attention module's own scaling (1/sqrt(head_dim) would be {head_dim ** -0.5:.6g})"


def per_head(value: Any, heads: int, tokens: int) -> torch.Tensor | None:
    """(heads, tokens, dim) from a projection's (or QK-norm's) output, whichever layout the model uses."""
    x = value[0] if value.ndim == 4 else value[0].reshape(tokens, heads, -1)
    if value.ndim == 4 and heads == tokens:
        return None  # (heads, tokens) or (tokens, heads): cannot tell
    if x.shape[0] == heads and x.shape[1] == tokens:
        return x.double().cpu()
    if x.shape[0] == tokens and x.shape[1] == heads:
        return x.transpose(0, 1).double().cpu()
    return None


# --------------------------------------------------------------------------------------------
# The walk


def walk(prompt: str, *, model: Any = None, layer: int = -1, head: int = 0, token: str | None = None,
         all_queries: bool = False, every_head: bool = False) -> AttentionWalk:
    """LAYER's HEAD for the query TOKEN (a word or a position; default the last), step by step, with its
    own check; ``all_queries``: the walk of every query token too (what the page's select shows), and with
    ``every_head`` the other heads of that layer as ``views`` (no extra forward pass)."""
    import torch

    from llmscope.config.values import text_config
    from llmscope.forward.anatomy import anatomy, require
    from llmscope.forward.attention import check_attention_work, eager_model, find_query, token_pieces
    from llmscope.forward.attention_kind import attention_kind, check_indices, layer_type, resolve_layer
    from llmscope.forward.hooks import capture
    from llmscope.text.prompts import check_prompt_options, encode_for

    check_prompt_options(prompt, chat=False, system=None)
    lm = eager_model(model, layer, head)
    num_layers, num_heads = check_indices(lm.config, layer, head)
    index = resolve_layer(layer, num_layers)
    parts = anatomy(lm.model)
    if not parts.blocks[index].attention:  # a hybrid's other layers: Mamba, linear attention, a convolution
        walkable = [b.index for b in parts.blocks if b.attention and b.attention_output]
        raise ModelFormatError(
            f"layer {index} of {parts.model_type} has no softmax attention to walk",
            hint=f"layer {walkable[0]} has: `layer={walkable[0]}`" if walkable else "no layer of it has",
        )
    require(parts, "attention", "attention_output", layer=index)
    block = parts.blocks[index]
    attn, o_proj = parts.module(lm.model, block.attention), parts.module(lm.model, block.attention_output)
    kind = attention_kind(lm.config, causal=not lm.masked)
    encoded = encode_for(lm, prompt)
    pieces = token_pieces(lm.tokenizer, encoded.ids)
    query = find_query(token, pieces, encoded.offsets, prompt) if token is not None else len(pieces) - 1
    check_attention_work(lm, len(pieces), kept=1, all_layers=False)
    pre = getattr(attn, "q_norm", None) or getattr(attn, "q_proj", None)
    ids = torch.tensor([encoded.ids], device=lm.device)  # (1, tokens)
    with contextlib.ExitStack() as stack, torch.inference_mode():
        seen = stack.enter_context(recording(attn))
        entering = stack.enter_context(capture(attn, "input"))
        projected = stack.enter_context(capture(o_proj, "output"))
        before = stack.enter_context(capture(pre, "output")) if pre is not None else None
        lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    if seen.query is None:
        raise ModelFormatError(f"{lm.source.display_name}: layer {index}'s attention did not run through "
                               "eager attention", hint="the walk needs the eager implementation")
    return _walked(lm, parts, attn, o_proj, seen, entering, projected, before, index, head, query, pieces,
                   kind, layer_type(kind, index), all_queries, encoded.warnings, text_config(lm.config), every_head)


def _walked(lm: Any, parts: Any, attn: Any, o_proj: Any, seen: Recorded, entering: Any, projected: Any,
            before: Any, index: int, head: int, query: int, pieces: list[str], kind: Any, ltype: str | None,
            all_queries: bool, warnings: list[str], config: Any, every_head: bool = False) -> AttentionWalk:
    import torch

    heads, kv_heads = seen.query.shape[1], seen.key.shape[1]
    groups = heads // kv_heads
    tokens, head_dim = seen.query.shape[2], seen.query.shape[-1]
    sinks = getattr(attn, "sinks", None)
    sinks = sinks.detach().double().cpu() if sinks is not None else None
    computed = [head_scores(seen, h, groups, float(sinks[h]) if sinks is not None else None) for h in range(heads)]
    mine = computed[head]
    outputs = torch.stack([c["output"] for c in computed], dim=1)  # (tokens, heads, value dim)
    with torch.inference_mode():  # every head's write, plus the bias: the attention output
        total = o_proj(outputs.reshape(tokens, -1).to(next(o_proj.parameters()))).double().cpu()  # (tokens, hidden)
    check = WalkCheck(
        weights_max_abs_error=max(float((c["weights"] - seen.weights[0, h].double().cpu()).abs().max())
                                  for h, c in enumerate(computed)),
        output_max_abs_error=max(float((outputs - seen.output[0].double().cpu()).abs().max()),
                                 float((total - projected.value[0].double().cpu()).abs().max())),
    )
    writes: dict[int, Any] = {}
    hidden = entering.value[0].double().cpu()  # (tokens, hidden): after the block's input norm
    unrotated = per_head(before.value, heads, tokens) if before is not None else None

    def row(i: int, h: int) -> WalkRow:
        c = computed[h]
        if h not in writes:
            writes[h] = head_write(o_proj, outputs, h)  # (tokens, hidden)
        values = torch.linalg.vector_norm(c["v"], dim=-1)  # (tokens,)
        w = c["weights"][i]
        keys = [WalkKey(position=j, token=pieces[j], score=float(c["score"][i, j]),
                        scaled=finite(float(c["scaled"][i, j])), masked=bool(c["masked"][i, j]),
                        weight=float(w[j]), value_norm=float(values[j]), weighted_value_norm=float(w[j] * values[j]))
                for j in range(tokens)]
        sink = float(sinks[h]) if sinks is not None else None
        return WalkRow(
            position=i, token=pieces[i], hidden_norm=norm(hidden[i]), query_norm=norm(c["q"][i]),
            query_norm_before_rope=norm(unrotated[h, i]) if unrotated is not None else None, keys=keys,
            sink_logit=sink, sink_weight=float(1 - w.sum()) if sink is not None else None,
            output_norm=norm(c["output"][i]), write_norm=norm(writes[h][i]), attention_output_norm=norm(total[i]),
        )

    positions, theta, dims = positions_of(lm.model, config, parts, ltype, head_dim)
    scale = float(mine["scale"])
    window = seen.window if seen.window else (kind.sliding_window if ltype == "sliding_attention" else None)
    return AttentionWalk(
        model=lm.source.display_name, tokens=pieces, layer=index, layer_type=ltype, head=head,
        kv_head=head // groups, heads_sharing=list(range(head // groups * groups, head // groups * groups + groups)),
        num_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, scale=scale,
        scale_source=scale_source(scale, config, head_dim), softcap=seen.softcap, window=window,
        positions=positions, rope_theta=theta, rotary_dims=dims, rope_attention_scaling=rope_scaling(lm.model),
        alibi_slope=float(seen.bias[head, 0, 1] - seen.bias[head, 0, 0]) if seen.bias is not None and tokens > 1 else None,
        qk_norm=getattr(attn, "q_norm", None) is not None, causal=kind.causal, query=row(query, head),
        rows=[row(i, head) for i in range(tokens)] if all_queries else [], check=check, warnings=list(warnings),
        views=[HeadView(index, h, h // groups, ltype, [row(i, h) for i in range(tokens)])
               for h in range(heads) if h != head] if every_head else [],
    )


PAGE_KEYS = 200_000  # keys a page holds at most over every (layer, head, query): about 20 MB of JSON


def walk_page(prompt: str, *, model: Any = None, layer: int = -1, head: int = 0, token: str | None = None
              ) -> AttentionWalk:
    """The walk for a page: every query token of every head of every layer (one forward pass per layer),
    as far as ``PAGE_KEYS`` allows; beyond it the chosen layer's heads, or the chosen head alone, and a note."""
    import dataclasses as dc

    from llmscope.forward.attention import eager_model

    lm = eager_model(model, layer, head)
    main = walk(prompt, model=lm, layer=layer, head=head, token=token, all_queries=True, every_head=True)
    tokens, heads = len(main.tokens), main.num_heads
    from llmscope.forward.anatomy import anatomy

    walkable = [b.index for b in anatomy(lm.model).blocks if b.attention and b.attention_output]
    if len(walkable) * heads * tokens * tokens > PAGE_KEYS:
        if heads * tokens * tokens > PAGE_KEYS:
            return dc.replace(main, views=[], views_note=f"the page holds head {main.head} of layer {main.layer} "
                              "only: every head would be too large a page for this prompt")
        return dc.replace(main, views_note=f"the page holds layer {main.layer}'s heads only: every layer would be "
                          "too large a page for this prompt")
    views = list(main.views)
    for other in walkable:
        if other != main.layer:
            more = walk(prompt, model=lm, layer=other, head=0, token=token, all_queries=True, every_head=True)
            views += [HeadView(other, 0, 0, more.layer_type, more.rows), *more.views]
    return dc.replace(main, views=views)


# The name in ``llmscope``'s lazy API.
attention_walk = walk
