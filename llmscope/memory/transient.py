"""The transient memory of one prefill: what transformers allocates beside the weights and the KV cache.

Read from transformers 5 (``modeling_*``, ``masking_utils``, ``integrations/sdpa_attention``,
``cache_utils``, ``generation/utils``) and checked against torch's profiler, layer by layer. A decoder
prefill of T tokens at batch B in the run dtype holds, while its layers run:

- the residual stream: the input embeddings (kept by the model's forward), the layer's input, the
  residual and the normed input: 3 x (B, T, hidden) in attention, 4 in the MLP;
- the rotary tables: cos and sin, (B, T, head_dim) per RoPE kind (Gemma 3 has two);
- the attention masks that are materialised: sdpa skips the causal mask (``is_causal``) but builds a
  (B, 1, T, T) bool mask for sliding layers once T reaches the window; eager builds a float mask
  of that shape per layer kind; flash attention builds none;
- the sliding layers' KV cache at the whole prompt: ``DynamicSlidingWindowLayer`` keeps a view of its
  last ``window - 1`` tokens, which holds the full prefill tensor until the first decode step.

The peak is then the largest of one layer's MLP (gate, activation and product: 3 x (B, T,
intermediate) for a gated MLP), one layer's attention (sdpa converts a bool mask into a float
(B, 1, T, T) copy; eager holds (B, heads, T, T) scores and their float32 softmax; the query and its
rotary temporaries) and the LM head: ``generate`` asks for the last position only
(``logits_to_keep=1``, then a float32 copy), a forward pass returns (B, T, vocab) logits. A Mamba-1
mixer's reference scan is a phase of its own. What particular models do in their own code (Falcon,
MLA, the Mamba scan) is in transient_terms.py.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from llmscope.loading import model_calls
from llmscope.config.kv_cache import KVCacheEstimate
from llmscope.config.values import (
    activation,
    config_value,
    intermediate_size,
    key_value_heads,
    rope,
    text_config,
    vocab_size,
)
from llmscope.errors import UsageError
from llmscope.memory.transient_terms import (
    EVERY_EXPERT_SEES_EVERY_TOKEN,
    LOGIT_SCALES,
    TransientTerm,
    dims,
    eager_scores,
    falcon_attention,
    mask_float,
    mla_attention,
    read_mamba_mixer,
    read_mla_dims,
    selective_scan,
)
from llmscope.config.parameters import DTYPE_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

MODES = ("generate", "forward")
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
_NO_MASK = ("flash_attention_2", "flash_attention_3", "flex_attention")  # build no (B, 1, T, T) mask
# transformers' activations written as several torch ops (GPT-2's gelu_new: 0.5 * x * (1 + tanh(...))):
# two more (B, T, intermediate) temporaries alive at once than a one-kernel gelu or silu
COMPOSITE_ACTIVATIONS = {"gelu_new", "gelu_fast", "quick_gelu", "gelu_python", "gelu_accurate", "gelu_10", "laplace",
                         "relu2"}


@dataclasses.dataclass(frozen=True)
class ForwardShape:
    """What the estimate needs, read once from the config and the model built on the meta device."""

    hidden_size: int
    intermediate_size: int
    mlp_tensors: int  # (B, T, intermediate) tensors alive at the MLP's peak: 2 plain, 3 gated, 4 fused gate_up
    experts_per_token: int | None  # MoE: each token goes through this many experts (grouped_mm; all of them in Llama 4)
    num_attention_heads: int | None  # None: no attention (recurrent models)
    num_key_value_heads: int | None
    head_dim: int | None
    vocab_size: int
    windows: tuple[int | None, ...]  # per attention layer kind: the sliding window, None for full attention
    rope_tables: int  # distinct (cos, sin) pairs computed per forward
    logit_softcapping: bool
    logit_scaling: bool  # logits * or / a constant from the config, out of place (Cohere, Granite)
    attention_code: str  # 'interface': transformers' shared attention functions; or a model's own: 'falcon'
    attn_implementation: str
    causal: bool
    mla_dims: tuple[int, int] | None = None  # MLA (DeepSeek V2/V3): each head's query/key width, value width
    mamba_inner: int = 0  # Mamba-1 mixers (Mamba, Falcon Mamba, Jamba, Zamba): the inner width ...
    mamba_state: int = 0  # ... and the SSM state per channel; 0 where there are none
    mamba_scan_width: int = 0  # channels scanned at once: the inner width, a head's in Zamba (a loop over heads)


@dataclasses.dataclass(frozen=True)
class TransientEstimate:
    """The tensors alive at the prefill's peak, beside the weights and the KV cache."""

    mode: str
    attn_implementation: str
    peak: str  # where the peak falls: 'attention', 'mlp', 'selective_scan' or 'lm_head'
    terms: tuple[TransientTerm, ...]  # at the peak; they add up to ``bytes``
    phases: dict[str, int]  # each phase's total, the peak's among them

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.terms)

    def as_dict(self) -> dict[str, int]:
        return {t.name: t.bytes for t in self.terms}

    def shapes(self) -> dict[str, str]:
        return {t.name: t.shape for t in self.terms}


# --------------------------------------------------------------------------------------------
# Reading the shape


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"`mode={mode}`: unknown mode",
                         hint="use generate (prefill, then decode) or forward (all logits)")
    return mode


def check_attn_implementation(name: str | None) -> str | None:
    if name is not None and name not in ATTENTION_IMPLEMENTATIONS:
        raise UsageError(f"`attn_implementation={name}`: unknown",
                         hint=f"use one of {', '.join(ATTENTION_IMPLEMENTATIONS)}")
    return name


def forward_shape(config: PretrainedConfig, meta: nn.Module, *, attn_implementation: str | None = None,
                  causal: bool = True) -> ForwardShape:
    """Read the shape of one forward pass; ``attn_implementation`` None: what transformers picked."""
    text = text_config(config)
    hidden = int(config_value(text, "hidden_size", None) or config_value(text, "d_model", 0) or 0)
    heads = config_value(text, "num_attention_heads", None)
    heads = int(heads) if isinstance(heads, int) and heads > 0 else None
    kv_heads = key_value_heads(text, heads) if heads else None
    head_dim = config_value(text, "head_dim", None) if heads else None
    head_dim = int(head_dim) if isinstance(head_dim, int) and head_dim > 0 else (hidden // heads if heads else None)
    moe_k = config_value(text, "num_experts_per_tok", None) or config_value(text, "moe_topk", None)
    moe_k = int(moe_k) if isinstance(moe_k, int) and moe_k > 0 and _has_experts(meta) else None
    if moe_k and text.model_type in EVERY_EXPERT_SEES_EVERY_TOKEN:
        moe_k = int(config_value(text, "num_local_experts", moe_k))
    inter = config_value(text, "moe_intermediate_size", None) if moe_k else None
    inter = inter if isinstance(inter, int) and inter > 0 else intermediate_size(text, hidden)
    theta, _ = rope(text)
    softcap = config_value(text, "final_logit_softcapping", None) or config_value(config, "final_logit_softcapping", None)
    scaled = any(config_value(c, name, None) is not None for c in (text, config) for name in LOGIT_SCALES)
    implementation = attn_implementation or model_calls.attn_implementation(meta) or "eager"
    return ForwardShape(
        hidden_size=hidden,
        intermediate_size=int(inter or 4 * hidden),
        mlp_tensors=_mlp_tensors(meta) + (2 if (activation(text) or "") in COMPOSITE_ACTIVATIONS else 0),
        experts_per_token=moe_k,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab_size(config),
        windows=_windows(text) if heads else (),
        rope_tables=(len(theta) if isinstance(theta, dict) else 1) if theta is not None and heads else 0,
        logit_softcapping=bool(softcap),
        logit_scaling=scaled,
        attention_code="falcon" if text.model_type == "falcon" and not config_value(text, "alibi", False) else "interface",
        attn_implementation=str(implementation),
        causal=causal,
        mla_dims=read_mla_dims(text) if heads else None,
        **read_mamba_mixer(config),
    )


def _has_experts(meta: nn.Module) -> bool:
    return any("expert" in name for name, _ in meta.named_modules())


def _mlp_tensors(meta: nn.Module) -> int:
    """Tensors of (B, T, intermediate) alive at the MLP's peak, from the modules' names: a fused
    gate_up projection (Phi-3) holds 2 + activation + product; gate and up, 3; fc then activation, 2."""
    names = [name for name, _ in meta.named_modules()] + [name for name, _ in meta.named_parameters()]
    if any(re.search(r"gate_up", n) for n in names):
        return 4
    if any(re.search(r"(gate_proj|\.w1$|\.w3$|\.w1\.|\.w3\.|wi_0|\.gate$|fc1_gate)", n) for n in names):
        return 3
    return 2


def _windows(text: PretrainedConfig) -> tuple[int | None, ...]:
    """The distinct attention kinds by window, as transformers' DynamicCache lays its layers out."""
    try:
        from llmscope.config.kv_cache import dynamic_cache_layers

        windows = {getattr(layer, "sliding_window", None) for layer in dynamic_cache_layers(text)}
    except Exception:  # a config DynamicCache cannot read: every layer attends to the whole context
        windows = {None}
    return tuple(sorted(windows, key=lambda w: -1 if w is None else int(w))) or (None,)


# --------------------------------------------------------------------------------------------
# The estimate


def transient_at_peak(
    shape: ForwardShape,
    *,
    context: int,
    batch: int,
    dtype: str,
    mode: str = "generate",
    kv: KVCacheEstimate | None = None,
) -> TransientEstimate:
    """The tensors alive at the peak of a prefill over ``context`` tokens (``mode`` 'generate': one
    token after it; 'forward': every position's logits). ``kv``: the cache it fills, if any."""
    mode = mode if shape.causal else "forward"  # an encoder has no generate: its pass is the forward
    e = int(DTYPE_BYTES[dtype])
    B, T = batch, context
    kv_prefill = _sliding_kv_prefill(kv, T)
    held = [t for t in (kv_prefill, _rotary(shape, B if mode == "generate" else 1, T, dtype, e),
                        _masks(shape, B, T, dtype, e, mode)) if t.bytes]
    phases: dict[str, list[TransientTerm]] = {
        "attention": [_hidden(3, B, T, shape.hidden_size, dtype, e), *held, *_attention(shape, B, T, dtype, e)],
        "mlp": [_hidden(4, B, T, shape.hidden_size, dtype, e), *held, _held_attention_weights(shape, B, T, dtype, e),
                _mlp(shape, B, T, dtype, e)],
        "lm_head": [_hidden(1, B, T, shape.hidden_size, dtype, e), *([kv_prefill] if kv_prefill.bytes else []),
                    *_logits(shape, B, T, dtype, e, mode)],
    }
    if shape.mamba_inner:
        phases["selective_scan"] = [_hidden(3, B, T, shape.hidden_size, dtype, e), *held, *selective_scan(shape, B, T, dtype, e)]
    totals = {name: sum(t.bytes for t in terms) for name, terms in phases.items()}
    peak = max(totals, key=lambda name: totals[name])
    return TransientEstimate(
        mode=mode,
        attn_implementation=shape.attn_implementation,
        peak=peak,
        terms=tuple(t for t in phases[peak] if t.bytes),
        phases=totals,
    )


def _hidden(count: int, B: int, T: int, hidden: int, dtype: str, e: int) -> TransientTerm:
    return TransientTerm("hidden_states", count * B * T * hidden * e, f"{count} x {dims(B, T, hidden)} {dtype}")


def _rotary(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> TransientTerm:
    """cos and sin per RoPE kind; generate passes position ids per sequence, a bare forward (1, T)."""
    n = 2 * shape.rope_tables
    d = shape.head_dim or 0
    return TransientTerm("rotary", n * B * T * d * e, f"{n} x {dims(B, T, d)} {dtype}")


def _materialised(shape: ForwardShape, window: int | None, T: int) -> bool:
    """Whether this layer kind gets a (B, 1, T, T) mask: masking_utils skips a causal mask for sdpa
    (``is_causal``) unless a sliding window is reached; eager always builds one; flash never."""
    if not shape.causal or shape.attn_implementation in _NO_MASK:
        return False
    if shape.attn_implementation == "sdpa" and shape.attention_code != "falcon":  # Falcon: allow_is_causal_skip=False
        return window is not None and T >= window
    return True


def _masks(shape: ForwardShape, B: int, T: int, dtype: str, e: int, mode: str) -> TransientTerm:
    kinds = [w for w in shape.windows if _materialised(shape, w, T)]
    if not kinds:
        return TransientTerm("attention_masks", 0, "")
    if shape.attn_implementation == "sdpa":
        # bool; generate passes a (B, T) padding mask, so the mask has the batch; a bare forward's is expanded
        b = B if mode == "generate" else 1
        return TransientTerm("attention_masks", len(kinds) * b * T * T, f"{len(kinds)} x {dims(b, 1, T, T)} bool")
    return TransientTerm("attention_masks", len(kinds) * B * T * T * e, f"{len(kinds)} x {dims(B, 1, T, T)} {dtype}")


def _sliding_kv_prefill(kv: KVCacheEstimate | None, T: int) -> TransientTerm:
    """Sliding layers hold their whole prefill (a view keeps the full tensor) until the next token."""
    extra = sum(g.bytes_per_token * (T - g.tokens_kept) for g in (kv.layers if kv else []) if g.sliding_window)
    layers = sum(len(g.layers) for g in (kv.layers if kv else []) if g.sliding_window)
    return TransientTerm("sliding_kv_prefill", extra, f"{layers} layers x {T:,} tokens")


def _held_attention_weights(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> TransientTerm:
    """Eager attention returns its weights, and the decoder layer keeps them (``hidden_states, _ =
    self.self_attn(...)``) through its MLP; Falcon's model loop also keeps the previous layer's."""
    h = shape.num_attention_heads or 0
    if shape.attn_implementation != "eager" or not h:
        return TransientTerm("attention_weights", 0, "")
    n = 2 if shape.attention_code == "falcon" else 1
    return TransientTerm("attention_weights", n * B * h * T * T * e, f"{n} x {dims(B, h, T, T)} {dtype}")


def _mlp(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> TransientTerm:
    inter = shape.intermediate_size
    if shape.experts_per_token:  # grouped_mm: every (token, expert) pair's hidden, gate_up, activation, product
        rows = B * T * shape.experts_per_token
        return TransientTerm("mlp", rows * (shape.hidden_size + 4 * inter) * e,
                             f"{dims(rows, shape.hidden_size)} + 4 x {dims(rows, inter)} {dtype}, experts")
    n = shape.mlp_tensors
    return TransientTerm("mlp", n * B * T * inter * e, f"{n} x {dims(B, T, inter)} {dtype}")


def _attention(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> list[TransientTerm]:
    """The largest one layer's attention holds, over its layer kinds."""
    if not shape.num_attention_heads or not shape.head_dim:
        return []
    return max((_attention_kind(shape, w, B, T, dtype, e) for w in shape.windows or (None,)),
               key=lambda terms: sum(t.bytes for t in terms))


def _attention_kind(shape: ForwardShape, window: int | None, B: int, T: int, dtype: str,
                    e: int) -> list[TransientTerm]:
    if shape.mla_dims:
        return mla_attention(shape, B, T, dtype, e)
    if shape.attention_code == "falcon":
        return falcon_attention(shape, B, T, dtype, e)
    h, d = shape.num_attention_heads or 0, shape.head_dim or 0
    kv_heads = shape.num_key_value_heads or h
    q_dims = dims(B, h, T, d)
    q = B * h * T * d * e
    masked = _materialised(shape, window, T)
    # repeat_kv copies keys and values to every head unless sdpa runs GQA itself (no mask) or it is a
    # view (one KV head); flash attention reads grouped heads as they are
    repeat = h != kv_heads and kv_heads > 1 and shape.attn_implementation not in _NO_MASK and (
        masked or shape.attn_implementation == "eager")
    kernel = [TransientTerm("query", q, f"{q_dims} {dtype}")]
    if repeat:
        kernel.append(TransientTerm("repeated_kv", 2 * q, f"2 x {q_dims} {dtype}"))
    if shape.attn_implementation == "eager":
        kernel.append(eager_scores(B, h, T, dtype, e))
    elif masked:  # sdpa turns the bool mask into a float one of the query's dtype
        kernel.append(mask_float(B, T, dtype, e))
    kernel.append(TransientTerm("attention_output", q, f"{q_dims} {dtype}"))
    rotary = [TransientTerm("query_rotary", 4 * q, f"4 x {q_dims} {dtype}")]  # q, q*cos, rotate_half*sin, sum
    return max(kernel, rotary, key=lambda terms: sum(t.bytes for t in terms))


def _logits(shape: ForwardShape, B: int, T: int, dtype: str, e: int, mode: str) -> list[TransientTerm]:
    V = shape.vocab_size
    if mode == "generate":  # logits_to_keep=1, then generate's float32 copy of the last row
        return [TransientTerm("logits", B * V * (e + 4), f"{dims(B, 1, V)} {dtype} + {dims(B, V)} float32")]
    terms = [TransientTerm("logits", B * T * V * e, f"{dims(B, T, V)} {dtype}")]
    if shape.logit_softcapping:  # logits / cap, tanh, * cap: one more at a time
        terms.append(TransientTerm("logits_softcapping", B * T * V * e, f"{dims(B, T, V)} {dtype}"))
    if shape.logit_scaling:  # the scaled copy beside the logits
        terms.append(TransientTerm("logits_scaled", B * T * V * e, f"{dims(B, T, V)} {dtype}"))
    return terms

