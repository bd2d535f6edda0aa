"""The parts of the prefill's transient memory that belong to particular models' own code.

transient.py holds what transformers' shared code allocates (attention interface, masks, MLP, logits);
this module, what a model does its own way: Falcon's attention, MLA's per-head keys and values, torch's
math sdpa where no fused kernel takes the shapes, and the Mamba-1 reference scan. Each read from the
model's ``modeling_*.py`` in transformers 5 and checked against torch's profiler (tests/test_transient.py).
The term type and the terms both modules build (eager scores, sdpa's float mask) live here too.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from llmscope.config.values import config_value

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig

    from llmscope.memory.transient import ForwardShape

# config fields by which a causal LM's forward scales its logits, out of place: one more (B, T, vocab)
LOGIT_SCALES = ("logit_scale", "logits_scaling", "output_multiplier")

# MoE layers that send every token through every expert, each scaled by its router score (Llama 4's
# Llama4TextMoe: hidden_states.repeat(num_experts, 1), then one bmm per projection over all experts)
EVERY_EXPERT_SEES_EVERY_TOKEN = {"llama4_text"}


@dataclasses.dataclass(frozen=True)
class TransientTerm:
    name: str
    bytes: int
    shape: str  # what it is: '3 x (1, 8192, 2048) float32'


def dims(*dims: int) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def read_mla_dims(text: PretrainedConfig) -> tuple[int, int] | None:
    """Multi-head latent attention's per-head widths: keys and values are expanded from the latent for
    every head, queries and keys nope + rope wide, values v_head_dim (config head_dim is the rope part)."""
    nope, rope_part, value = (config_value(text, name, None) for name in ("qk_nope_head_dim", "qk_rope_head_dim",
                                                                          "v_head_dim"))
    if not all(isinstance(x, int) and x > 0 for x in (nope, rope_part, value)) or not config_value(text, "kv_lora_rank", None):
        return None
    return nope + rope_part, value


def read_mamba_mixer(config: PretrainedConfig) -> dict[str, int]:
    """Inner width and state size of the Mamba-1 mixers, read from the recurrent state they cache."""
    from llmscope.config.state import recurrent_state_estimate

    state = recurrent_state_estimate(config, batch=1, dtype="float32")
    if state is None or state.family != "Mamba":
        return {}
    shape = next(t.shape for t in state.tensors if t.name == "recurrent_states")  # (1, [heads,] inner, d_state)
    return {"mamba_inner": math.prod(shape[1:-1]), "mamba_state": int(shape[-1]), "mamba_scan_width": int(shape[-2])}


def selective_scan(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> list[TransientTerm]:
    """A Mamba-1 mixer's prefill without the mamba_ssm kernels (always so on a CPU): transformers' reference
    scan discretizes A and B for the whole sequence first, three float32 (B, inner, T, d_state) tensors
    (Zamba scans one head's channels at a time).
    Beside them: the in_proj output (2 x inner), the conv's padded input and its activation, and the time
    step, its biased and softplus forms and one product: 8 x (B, T, inner)."""
    inner, n, width = shape.mamba_inner, shape.mamba_state, shape.mamba_scan_width
    return [TransientTerm("selective_scan", 3 * B * width * T * n * 4, f"3 x {dims(B, width, T, n)} float32"),
            TransientTerm("mixer", 8 * B * T * inner * e, f"8 x {dims(B, T, inner)} {dtype}")]


def eager_scores(B: int, h: int, T: int, dtype: str, e: int) -> TransientTerm:
    """transformers' eager attention: the (B, heads, T, T) scores, then their float32 softmax beside them."""
    return TransientTerm("attention_scores", B * h * T * T * (e + max(e, 4)), f"{dims(B, h, T, T)} {dtype} + float32 softmax")


def mask_float(B: int, T: int, dtype: str, e: int) -> TransientTerm:
    """sdpa's float copy of a bool (B, 1, T, T) mask, in the query's dtype."""
    return TransientTerm("attention_mask_float", B * T * T * e, f"{dims(B, 1, T, T)} {dtype}")


def math_sdpa_scores(B: int, h: int, T: int) -> TransientTerm:
    """torch's math sdpa, where no fused kernel takes the shapes: float32 scores and softmax (whatever the
    run dtype: allow_fp16_bf16_reduction_math_sdp is off) and an isneginf bool of that shape."""
    scores = dims(B, h, T, T)
    return TransientTerm("attention_scores", B * h * T * T * (2 * 4 + 1), f"2 x {scores} float32 + {scores} bool, math sdpa")


def mla_attention(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> list[TransientTerm]:
    """MLA: the query, and keys and values expanded from the latent for every head. Under sdpa a value
    width other than the query's fits no fused kernel on a CPU: the math path, with the causal mask
    it builds itself."""
    h = shape.num_attention_heads or 0
    qk, v = shape.mla_dims or (0, 0)
    terms = [TransientTerm("query", B * h * T * qk * e, f"{dims(B, h, T, qk)} {dtype}"),
             TransientTerm("keys_values", B * h * T * (qk + v) * e, f"{dims(B, h, T, qk)} + {dims(B, h, T, v)} {dtype}")]
    if shape.attn_implementation == "eager":
        terms.append(eager_scores(B, h, T, dtype, e))
    elif shape.attn_implementation == "sdpa" and qk != v:
        terms += [math_sdpa_scores(B, h, T), mask_float(B, T, dtype, e)]
    terms.append(TransientTerm("attention_output", B * h * T * v * e, f"{dims(B, h, T, v)} {dtype}"))
    return terms


def falcon_attention(shape: ForwardShape, B: int, T: int, dtype: str, e: int) -> list[TransientTerm]:
    """FalconAttention's own code. Eager: the scores, their masked sum and its softmax in the run dtype.
    sdpa always gets the mask; with one KV head for many query heads (Falcon-7B) no fused kernel takes the
    shapes, and torch's math path holds the scores, their softmax and an isneginf bool of that shape."""
    h, d = shape.num_attention_heads or 0, shape.head_dim or 0
    kv = shape.num_key_value_heads or h
    scores, q_dims, q = dims(B, h, T, T), dims(B, h, T, d), B * h * T * d * e
    # the new decoder architecture broadcasts several KV heads to every query head (one KV head: a view)
    repeat = 1 < kv < h and shape.attn_implementation in ("sdpa", "eager")
    kernel = [TransientTerm("query", q, f"{q_dims} {dtype}")]
    # query, key and value are views of the fused projection's output, alive through the attention
    kernel.append(TransientTerm("fused_qkv", B * T * (h + 2 * kv) * d * e, f"{dims(B, T, (h + 2 * kv) * d)} {dtype}"))
    if repeat:
        kernel.append(TransientTerm("repeated_kv", 2 * q, f"2 x {q_dims} {dtype}"))
    if shape.attn_implementation == "eager":
        # the scores, their masked sum, its softmax, and the previous layer's softmax (returned as its attention
        # weights, kept by FalconModel's loop until this layer returns)
        kernel.append(TransientTerm("attention_scores", 4 * B * h * T * T * e, f"4 x {scores} {dtype}"))
    elif shape.attn_implementation == "sdpa":
        if kv < h and not repeat:
            kernel.append(math_sdpa_scores(B, h, T))
        kernel.append(mask_float(B, T, dtype, e))
    kernel.append(TransientTerm("attention_output", q, f"{q_dims} {dtype}"))
    return kernel
