"""``llmscope contributions``: which layers and heads wrote the answer (direct logit attribution).

The target's logit at the last position (with ``versus``, the difference target - versus) is split into what
each part of the model wrote into the residual stream: the embedding (positional embeddings included where the
model adds them), each layer's attention output (with ``by="head"``, each head's share: its slice of the
output projection applied to its output) and MLP output, and the bias terms (the norms' biases, the output
projections' biases under ``by="head"``, the LM head's). Every norm between a part and the logit (the final
norm; Gemma's post-attention and post-feed-forward norms) is applied with its scale frozen at the value the
real forward pass computed (``explain/decompose.py``), so the parts add up to the model's logit before a
final soft-cap, which is then applied and named. The sum's difference from the real logit is reported with
every result.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import UsageError
from llmscope.progress import reporter

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.loading.model import LoadedModel

BY = ("layer", "head")
# masked LMs whose blocks renormalise the residual stream after adding to it
POST_NORM = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "albert", "electra", "mpnet",
                       "deberta", "deberta-v2"})


@dataclasses.dataclass(frozen=True)
class LayerContribution:
    layer: int
    attention: float
    mlp: float
    heads: list[float] | None  # with by="head": each head's share of ``attention`` (its bias is in ``bias``)
    experts: list[dict[str, Any]] | None  # MoE: [{"expert", "weight", "share"}] (a shared expert: "shared")


@dataclasses.dataclass(frozen=True)
class ContributionsResult:
    model: str
    prompt: str
    tokens: list[str]
    by: str
    target: str
    target_id: int
    versus: str | None
    versus_id: int | None
    logit: float  # the model's own (after scaling and soft-cap)
    logit_before_softcap: float | None  # where the model soft-caps: the value the parts add up to
    sum: float  # embedding + every layer's parts + bias, scaled as the model scales its logits
    error: float  # |sum - the model's logit before any soft-cap| / max(1, |that logit|)
    embedding: float
    bias: float
    layers: list[LayerContribution]
    dtype: str
    warnings: list[str] = dataclasses.field(default_factory=list)

    def running(self) -> list[float]:
        """The total after the embedding and each layer, in depth order."""
        total, out = self.embedding, []
        for layer in self.layers:
            total += layer.attention + layer.mlp
            out.append(total)
        return out


def check_options(prompt: str, *, target: str | None = None, versus: str | None = None, by: str = "layer",
                  chat: bool = False, system: str | None = None) -> None:
    from llmscope.text.prompts import check_prompt_options

    check_prompt_options(prompt, chat=chat, system=system)
    if by not in BY:
        raise UsageError(f"`by={by!r}`: unknown unit", hint=f"use one of: {', '.join(BY)}")
    if target == "":
        raise UsageError("`target=''`: the target is empty", hint="give one token, e.g. ' Paris'")
    if versus is not None and versus == target:
        raise UsageError(f"`versus={versus!r}` is the target itself", hint="give another token to compare with")


def _one_token(lm: LoadedModel, text: str, option: str) -> int:
    from llmscope.text.prompts import token_text

    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = ", ".join(repr(token_text(lm.tokenizer, i)) for i in ids) if ids else "none"
        raise UsageError(f"`{option}={text!r}` is {len(ids)} tokens ({pieces}), not one",
                         hint="the logit is one token's: give one token (llmscope tokenize shows them)")
    return int(ids[0])


def contributions(prompt: str, *, model: loading.ModelLike = None, target: str | None = None,
                  versus: str | None = None, by: str = "layer", chat: bool = False,
                  system: str | None = None) -> ContributionsResult:
    """Split the target's logit at PROMPT's last position (or target - versus) into what each part wrote."""
    import torch

    from llmscope.explain.decompose import decompose, head_shares
    from llmscope.explain.why import load_float32
    from llmscope.forward.anatomy import anatomy, require
    from llmscope.text.prompts import encode_for, token_text

    check_options(prompt, target=target, versus=versus, by=by, chat=chat, system=system)
    if isinstance(model, loading.LoadedModel):
        _refuse_post_norm(model.config)
    else:  # from the config alone, before any weight loads
        spec = loading.load_spec(model)
        _refuse_post_norm(loading.load_config(loading.source_of(spec), trust_remote_code=spec.trust_remote_code))
    lm, warnings = load_float32(model, task="predict a next token whose logit to split")
    parts = anatomy(lm.model)
    require(parts, "embedding", "final_norm", "unembedding", "attention", "mlp")
    if parts.head != parts.unembedding:
        raise UsageError(f"{parts.model_type}'s LM head transforms the hidden state before unembedding it: "
                         "its logit is not a sum of the parts' projections")
    encoded = encode_for(lm, prompt, chat=chat, system=system)
    warnings = [*encoded.warnings, *warnings]
    target_id = _one_token(lm, target, "target") if target is not None else None
    versus_id = _one_token(lm, versus, "versus") if versus is not None else None
    if versus_id is not None and versus_id == target_id:
        raise UsageError(f"`versus={versus!r}` is the same token as the target")
    _check_work(lm, len(encoded.ids))
    with reporter().status("Taking the residual stream apart"):
        d = decompose(lm.model, parts, encoded.ids, lm.device)
        final_logits = d.logits
        if target_id is None:
            target_id = int(final_logits.argmax())
        unembed = parts.module(lm.model, parts.unembedding)
        direction = unembed.weight.detach()[target_id].double()
        head_bias = _bias(unembed, target_id)
        if versus_id is not None:
            direction = direction - unembed.weight.detach()[versus_id].double()
            head_bias -= _bias(unembed, versus_id)
        scale = _linear_scale(parts)
        norm = d.final_norm

        def project(v: torch.Tensor) -> float:
            return float(direction @ norm.linear(v)) * scale

        heads_n = lm.config.get_text_config().num_attention_heads
        layers, bias = [], float(direction @ norm.bias.expand_as(direction)) * scale + head_bias * scale
        for w in d.blocks:
            heads = None
            if by == "head":
                split = head_shares(lm.model, parts, w, heads_n)
                if split is None:
                    raise UsageError(f"layer {w.index}'s heads cannot be read apart in {parts.model_type}",
                                     hint="use the default --by layer")
                shares, proj_bias = split
                heads = [project(s) for s in shares]
                bias += project(proj_bias)
            experts = None
            if w.experts is not None:
                post = w.mlp_post.linear if w.mlp_post is not None else (lambda v: v)
                experts = [{"expert": e, "weight": weight, "share": project(post(v))} for e, weight, v in w.experts]
            layers.append(LayerContribution(w.index, project(w.attention), project(w.mlp), heads, experts))
        embedding = project(d.embedding)
    model_logit = float(final_logits[target_id] - (final_logits[versus_id] if versus_id is not None else 0))
    raw = None
    if parts.final_logit_softcapping:  # the LM head's own output on the real normed state, before the cap
        raw = (float(direction @ d.normed) + head_bias) * scale
    total = embedding + bias + sum((sum(layer.heads) if layer.heads is not None else layer.attention) + layer.mlp
                                   for layer in layers)
    reference = raw if raw is not None else model_logit
    return ContributionsResult(
        model=lm.source.display_name, prompt=prompt, tokens=[token_text(lm.tokenizer, t) for t in encoded.ids],
        by=by, target=token_text(lm.tokenizer, target_id), target_id=target_id, versus=versus, versus_id=versus_id,
        logit=model_logit, logit_before_softcap=raw, sum=total,
        error=abs(total - reference) / max(1.0, abs(reference)), embedding=embedding, bias=bias, layers=layers,
        dtype=lm.dtype, warnings=warnings)


def _check_work(lm: LoadedModel, tokens: int) -> None:
    """One forward pass (hidden states, the last position's logits, the cache it lays out), estimated first."""
    from llmscope.memory.forward_guard import check_fits, layers_work

    estimate = layers_work(lm.config, tokens, dtype=lm.dtype, all_tokens=False, top=1, eager=False,
                           all_logits=False)
    check_fits(dataclasses.replace(estimate, what=f"contributions on {tokens:,} tokens"), device=lm.device,
               hints=["a shorter prompt"])


def _refuse_post_norm(config: Any) -> None:
    from llmscope.errors import ModelFormatError

    kind = getattr(config, "model_type", "")
    if kind in POST_NORM:
        raise ModelFormatError(
            f"{kind} is a post-norm model (BERT-style: every block renormalises the residual stream after adding to "
            "it), so its logit is not a sum of what each part wrote",
            hint="contributions works on pre-norm decoders (GPT-2, Llama, Gemma, Mistral, Qwen)")


def _bias(unembed: Any, token: int) -> float:
    import torch

    b = getattr(unembed, "bias", None)
    return float(b.detach().double()[token]) if isinstance(b, torch.Tensor) else 0.0


def _linear_scale(parts: Any) -> float:
    """What the model multiplies its LM head's output by before any soft-cap (Cohere, Granite)."""
    scale = parts.logit_scale or 1.0
    return scale / parts.logit_divisor if parts.logit_divisor else scale
