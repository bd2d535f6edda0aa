"""The residual stream at the last position taken apart: what the embedding and each block's attention (head by
head) and MLP wrote, and the norms between them and the logit applied with their scale frozen.

One forward pass with hooks (``forward/hooks.py``) on the anatomy map's sites keeps, at the last position only:
each block's input and output, its attention and MLP outputs, the input of its attention output projection
(the heads' outputs, concatenated) and every norm's input and output. A block's attention write is its
attention output, or the output of the norm that takes it (Gemma's post-attention norm); the same for its MLP.
Each block is checked: input + attention write + MLP write = output. A model whose blocks renormalise the
residual stream (post-norm, BERT-style) or scale it fails that check and is refused in one line.

A norm with its statistics frozen at the values the real pass computed is linear: RMSNorm maps v to
v * w' / rms(x), LayerNorm to (v - mean(v)) * w / std(x), x the input it really saw. ``Frozen`` computes that
through the module itself (its own weight, its own (1 + w) where Gemma has one), so parts add up to its output.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from llmscope.forward.anatomy import Anatomy

BLOCK_TOLERANCE = 1e-4  # relative: a block whose writes miss its output by more does not decompose


@dataclasses.dataclass
class Frozen:
    """One norm at one position, its statistics frozen: ``linear(v)`` is its map of a part, ``bias`` its constant."""

    module: nn.Module
    kind: str  # "rms" or "layer"
    scale: Any  # the statistic of the input it really saw (rms or std), a 0-d tensor
    eps: float
    bias: Any  # the norm's additive bias (LayerNorm), or zeros

    def _own(self, v: torch.Tensor) -> torch.Tensor:
        import torch

        centred = v - v.mean(dim=-1, keepdim=True) if self.kind == "layer" else v
        return torch.sqrt((centred.double() ** 2).mean(dim=-1, keepdim=True) + self.eps)

    def linear(self, v: torch.Tensor) -> torch.Tensor:
        """The norm's map of V with the input's statistics: the module's own output on V, rescaled."""
        import torch

        with torch.no_grad():
            out = self.module(v.to(self.module_dtype)).double() - self.bias
        return out * self._own(v) / self.scale

    @property
    def module_dtype(self) -> Any:
        return next(self.module.parameters()).dtype


def frozen(module: nn.Module, x: torch.Tensor, name: str) -> Frozen:
    """MODULE (a norm) frozen at its real input X (hidden,), or ModelFormatError for a norm of unknown kind."""
    import torch

    cls = type(module).__name__
    eps = getattr(module, "variance_epsilon", None)
    if eps is None:
        eps = getattr(module, "eps", None)
    if isinstance(module, torch.nn.LayerNorm) or (cls.endswith("LayerNorm") and "RMS" not in cls
                                                  and getattr(module, "bias", None) is not None):
        kind = "layer"
    elif "RMS" in cls.upper():
        kind = "rms"
    else:
        raise ModelFormatError(f"{name} is a {cls}, a norm llmscope cannot hold linear (RMSNorm and LayerNorm only)")
    if eps is None:
        raise ModelFormatError(f"{name} ({cls}) does not say its epsilon")
    bias = getattr(module, "bias", None)
    bias = bias.detach().double() if isinstance(bias, torch.Tensor) else torch.zeros((), dtype=torch.float64)
    probe = Frozen(module, kind, None, float(eps), bias)
    return dataclasses.replace(probe, scale=probe._own(x))


@dataclasses.dataclass
class BlockWrites:
    """What one block wrote into the residual stream at the last position, its parts and their norms."""

    index: int
    inp: torch.Tensor
    out: torch.Tensor
    attention: torch.Tensor  # the attention write (after a post-norm where there is one)
    mlp: torch.Tensor
    heads_in: torch.Tensor | None  # the attention output projection's input: the heads' outputs, concatenated
    attention_post: Frozen | None  # the norm between the attention output and the residual stream
    mlp_post: Frozen | None
    error: float  # |in + attention + mlp - out| / |out|
    experts: list[tuple[Any, float | None, Any]] | None = None  # MoE: (expert id or "shared", weight, its output)


@dataclasses.dataclass
class Decomposition:
    embedding: torch.Tensor  # the residual stream entering block 0 (positional embeddings included)
    blocks: list[BlockWrites]
    final: torch.Tensor  # the residual stream leaving the last block
    final_norm: Frozen
    logits: torch.Tensor  # the model's own logits at the last position (vocab,), float64
    normed: torch.Tensor  # the final norm's real output at the last position (what the LM head reads)


def _last(value: Any) -> Any:
    """A kept last-position vector (``capture_last``) as it is; a hidden state: its last position."""
    if getattr(value, "dim", None) and value.dim() == 1:
        return value
    from llmscope.forward.hooks import hidden_of

    return hidden_of(value)[0, -1].detach().double().clone()


def decompose(model: nn.Module, parts: Anatomy, ids: list[int], device: Any) -> Decomposition:
    """One forward pass on IDS, taken apart at the last position (see the module docstring)."""
    import torch

    from llmscope.forward.hooks import capture_last as capture  # one vector a site, however long the prompt
    from llmscope.forward.hooks import watch

    def sites(attr: str) -> dict[int, nn.Module]:
        return {b.index: parts.module(model, getattr(b, attr)) for b in parts.blocks if getattr(b, attr)}

    blocks = {b.index: parts.module(model, b.name) for b in parts.blocks}
    norms = {(b.index, n): parts.module(model, n) for b in parts.blocks for n in b.norms}
    final = parts.module(model, parts.final_norm)
    from llmscope.explain.attribution import keeps_logits

    kwargs: dict[str, Any] = {"input_ids": torch.tensor([ids], device=device), "use_cache": False}
    if keeps_logits(model):
        kwargs["logits_to_keep"] = 1  # the last position's logits only, not tokens x vocabulary
    experts = {b.index: m.experts for b in parts.blocks if b.router and b.mlp
               and isinstance(getattr(m := parts.module(model, b.mlp), "experts", None), torch.nn.Module)}
    routed: dict[int, tuple[Any, ...]] = {}

    def keep_routing(key: Any, _hidden: Any, raw: Any) -> None:
        args = raw[0]
        if len(args) >= 3:  # experts(hidden (tokens, hidden), top_k_index, top_k_weights), transformers 5
            routed[key] = tuple(a[-1:].detach().clone() for a in args[:3])

    with capture(blocks, "input") as b_in, capture(blocks) as b_out, capture(sites("attention")) as attn, \
            capture(sites("mlp")) as mlp, capture(sites("attention_output"), "input") as heads, \
            capture(norms, "input") as n_in, capture(norms) as n_out, capture(final, "input") as f_in, capture(final) as f_out, \
            watch(experts, keep_routing, "input"), torch.no_grad():
        logits = model(**kwargs).logits[0, -1].double()
    writes = []
    for b in parts.blocks:
        i = b.index
        x, y = _last(b_in[i]), _last(b_out[i])
        a = _last(attn[i]) if i in attn.hidden else None
        m = _last(mlp[i]) if i in mlp.hidden else None
        if a is None or m is None:
            raise ModelFormatError(f"layer {i} of {parts.model_type} has no attention and MLP to split it into",
                                   hint="contributions needs blocks of self-attention and an MLP")
        a_post = _post_norm(b, a, n_in, n_out, norms, parts)
        m_post = _post_norm(b, m, n_in, n_out, norms, parts)
        a_write = a if a_post is None else _last(n_out[a_post[0]])
        m_write = m if m_post is None else _last(n_out[m_post[0]])
        error = float((x + a_write + m_write - y).norm() / max(float(y.norm()), 1e-30))
        split = _experts(experts[i], routed[i], m) if i in routed else None
        writes.append(BlockWrites(i, x, y, a_write, m_write, _last(heads[i]) if i in heads.hidden else None,
                                  a_post[1] if a_post else None, m_post[1] if m_post else None, error, split))
    _check_blocks(parts, writes, n_out, norms)
    return Decomposition(embedding=writes[0].inp, blocks=writes, final=writes[-1].out,
                         final_norm=frozen(final, _last(f_in.value), parts.final_norm), logits=logits,
                         normed=_last(f_out.value))


def _experts(module: nn.Module, routing: tuple[Any, ...], total: torch.Tensor) -> list[tuple[Any, float | None, Any]]:
    """Each chosen expert's weighted output at the last position, run alone through the experts module with its
    own routing weight; what the MoE block wrote besides them (a shared expert) as "shared"."""
    import torch

    hidden, index, weights = routing
    out = []
    with torch.no_grad():
        for j in range(index.shape[-1]):
            alone = module(hidden, index[:, j:j + 1], weights[:, j:j + 1])[0].double()
            out.append((int(index[0, j]), float(weights[0, j]), alone))
    rest = total - sum(v for _, _, v in out)
    if float(rest.norm()) > 1e-6 * max(float(total.norm()), 1e-30):
        out.append(("shared", None, rest))
    return out


def _post_norm(block: Any, value: torch.Tensor, n_in: Any, n_out: Any, norms: dict, parts: Anatomy
               ) -> tuple[tuple[int, str], Frozen] | None:
    """The block's norm whose input is VALUE (the attention or MLP output), frozen; None where none takes it."""
    import torch

    for name in block.norms:
        key = (block.index, name)
        if key in n_in.hidden and n_in.hidden[key]:
            seen = _last(n_in[key])
            if seen.shape == value.shape and torch.allclose(seen, value, rtol=1e-5, atol=1e-6):
                return key, frozen(norms[key], seen, name)
    return None


def _check_blocks(parts: Anatomy, writes: list[BlockWrites], n_out: Any, norms: dict) -> None:
    import torch

    for w in writes:
        if w.error <= BLOCK_TOLERANCE:
            continue
        block = parts.blocks[w.index]
        post = [n for n in block.norms if (w.index, n) in n_out.hidden and n_out.hidden[(w.index, n)]
                and torch.allclose(_last(n_out[(w.index, n)]), w.out, rtol=1e-5, atol=1e-6)]
        if post:
            raise ModelFormatError(
                f"{parts.model_type} is a post-norm model (layer {w.index} ends in {post[0].rsplit('.', 1)[-1]}, "
                "which renormalises the residual stream): its logit is not a sum of what each part wrote",
                hint="contributions works on pre-norm decoders (GPT-2, Llama, Gemma, Mistral, Qwen)")
        raise ModelFormatError(
            f"layer {w.index} of {parts.model_type} does not add its attention and MLP outputs to the residual stream "
            f"(they miss its output by {w.error:.1e}, relative): its logit does not decompose into their writes",
            hint="contributions works on decoders whose blocks add attention and MLP outputs")
    for prev, nxt in zip(writes, writes[1:]):
        gap = float((prev.out - nxt.inp).norm() / max(float(nxt.inp.norm()), 1e-30))
        if gap > BLOCK_TOLERANCE:
            raise ModelFormatError(f"{parts.model_type} changes the residual stream between layers {prev.index} and "
                                   f"{nxt.index} ({gap:.1e}, relative): it does not decompose into the blocks' writes")


def head_shares(model: nn.Module, parts: Anatomy, w: BlockWrites, num_heads: int) -> tuple[list[Any], Any] | None:
    """Each head's share of block W's attention write (its slice of the output projection applied to its output,
    through the frozen post-norm where there is one), and the projection's bias through it; None where the
    block's heads cannot be read."""
    import torch

    name = parts.blocks[w.index].attention_output
    if w.heads_in is None or name is None:
        return None
    proj = parts.module(model, name)
    weight = proj.weight.detach().double()
    if type(proj).__name__ == "Conv1D":  # GPT-2: (in, out)
        weight = weight.t()
    z = w.heads_in
    if weight.shape[1] != z.shape[0] or z.shape[0] % num_heads:
        return None
    d = z.shape[0] // num_heads
    shares = [weight[:, h * d:(h + 1) * d] @ z[h * d:(h + 1) * d] for h in range(num_heads)]
    bias = getattr(proj, "bias", None)
    bias = bias.detach().double() if isinstance(bias, torch.Tensor) else torch.zeros_like(shares[0])
    if w.attention_post is not None:
        shares = [w.attention_post.linear(s) for s in shares]
        bias = w.attention_post.linear(bias) + w.attention_post.bias
    return shares, bias
