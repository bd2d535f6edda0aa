"""Mixture-of-experts routing: which experts each token goes to in each layer, and with what weight.

The choices are the model's own: a forward hook reads what each router module returns (in
transformers 5 every top-k router returns ``(router_logits, top_k_weights, top_k_index)``, after
its own softmax / sigmoid, top-k and renormalisation). The raw router logits come from
``output_router_logits=True``. Only if a router returns something else are the choices recomputed
from the logits the way Mixtral-style routers do it (softmax, top-k, renormalised when the config
says ``norm_topk_prob``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import LlmscopeError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from llmscope.loading import LoadedModel

MOE_EXAMPLES = "mistralai/Mixtral-8x7B-v0.1, Qwen/Qwen1.5-MoE-A2.7B or allenai/OLMoE-1B-7B-0924"


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class TokenRouting:
    position: int
    token: str
    experts: list[int]  # chosen experts, highest weight first
    weights: list[float]  # the weights the model mixes their outputs with


@dataclasses.dataclass(frozen=True)
class LayerRouting:
    layer: int
    tokens: list[TokenRouting]
    load: list[int]  # per expert: how many tokens of the prompt chose it


@dataclasses.dataclass(frozen=True)
class ExpertParameters:
    total: int  # every weight of the model
    active: int  # used for one token: the shared part plus num_experts_per_tok experts per MoE layer
    prompt: int  # used for this prompt: the shared part plus every expert at least one token chose
    per_expert: int  # one expert of one layer


@dataclasses.dataclass(frozen=True)
class ExpertRoutingResult:
    """``llmscope experts``: the router's choices for every token in every MoE layer."""

    model: str  # the display name (ModelSource.display_name)
    tokens: list[str]
    num_experts: int
    num_experts_per_tok: int
    method: str  # "router" (the router's own output) or "recomputed" (softmax + top-k of its logits)
    layers: list[LayerRouting]
    parameters: ExpertParameters

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tokens": self.tokens,
            "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "layers": [
                {
                    "layer": layer.layer,
                    "tokens": [{"token": t.token, "experts": t.experts, "weights": t.weights} for t in layer.tokens],
                    "load": layer.load,
                }
                for layer in self.layers
            ],
            "parameters": dataclasses.asdict(self.parameters),
        }


# --------------------------------------------------------------------------------------------
# Finding the routers


def router_classes(model: nn.Module) -> tuple[type, ...]:
    """The module classes transformers records ``router_logits`` from, as the model declares them."""
    from transformers import PreTrainedModel

    classes: list[type] = []
    names: set[str] = set()
    for module in model.modules():
        if not isinstance(module, PreTrainedModel):
            continue
        spec = (getattr(type(module), "_can_record_outputs", None) or {}).get("router_logits")
        if spec is None:
            continue
        target = getattr(spec, "target_class", spec)
        if isinstance(target, type):
            classes.append(target)
        if getattr(spec, "class_name", None):
            names.add(spec.class_name)
    if names:
        classes.extend({type(m) for m in model.modules() if any(type(m).__name__.endswith(n) for n in names)})
    return tuple(dict.fromkeys(classes))


def _layer_index(name: str, fallback: int) -> int:
    found = re.findall(r"\blayers?\.(\d+)\b|\bh\.(\d+)\b|\bblocks?\.(\d+)\b", name)
    if found:
        return int(next(g for g in found[-1] if g))
    return fallback


def _top_k_from_logits(logits: torch.Tensor, k: int, renormalise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    probs = torch.softmax(logits.float(), dim=-1)  # (tokens, experts)
    weights, index = torch.topk(probs, k, dim=-1)  # (tokens, k)
    if renormalise:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, index


# --------------------------------------------------------------------------------------------
# The public function


def experts(
    prompt: str,
    *,
    model: str | LoadedModel | None = None,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> ExpertRoutingResult:
    """Per MoE layer and token: the experts the router chose and their weights, plus expert load."""
    import torch

    from llmscope.architecture import _mixture_of_experts, count_parameters

    if not prompt:
        raise UsageError("the prompt is empty", hint="give some text to route")
    if not isinstance(model, loading.LoadedModel):
        # A dense model is refused from its config alone, before any weights load.
        from llmscope.resolve import resolve

        source = resolve(model, revision=revision, gguf_file=gguf_file)
        config = loading.load_config(source, trust_remote_code=trust_remote_code)
        with loading.translate_errors(source, what="config"):
            meta = loading.build_meta_model(config, trust_remote_code=trust_remote_code)
        if _mixture_of_experts(config, meta) is None:
            raise _dense(source.display_name)
        model = loading.load_model(source, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    lm = model
    moe = _mixture_of_experts(lm.config, lm.model)
    classes = router_classes(lm.model)
    if moe is None or not classes:
        raise _dense(lm.source.display_name)
    parameters = count_parameters(lm.model, moe)

    encoded = lm.tokenizer(prompt, return_tensors="pt")
    ids = encoded["input_ids"].to(lm.device)  # (1, tokens)
    from llmscope.next_token import check_context

    check_context(lm, ids.shape[-1])
    from llmscope.attention import token_pieces

    pieces = token_pieces(lm.tokenizer, ids[0].tolist())

    calls: list[tuple[str, Any]] = []
    names = {id(m): n for n, m in lm.model.named_modules()}
    hooks = [
        m.register_forward_hook(lambda mod, _inp, out: calls.append((names[id(mod)], out)))
        for m in lm.model.modules()
        if isinstance(m, classes)
    ]
    try:
        with torch.no_grad():
            out = lm.model(ids, output_router_logits=True)
    finally:
        for h in hooks:
            h.remove()
    router_logits = [x for x in (getattr(out, "router_logits", None) or ()) if x is not None]
    if not calls and not router_logits:
        raise _dense(lm.source.display_name)

    k = moe.num_experts_per_tok
    renormalise = bool(getattr(lm.config, "norm_topk_prob", lm.config.model_type in ("mixtral", "minimax")))
    method = "router"
    layers: list[LayerRouting] = []
    n_tokens = len(pieces)
    for order, (name, output) in enumerate(calls):
        layer = _layer_index(name, order)
        routed = _router_choice(output, n_tokens)
        if routed is None:  # an unusual router: recompute from its logits
            logits = router_logits[order] if order < len(router_logits) else _first_tensor(output)
            weights, index = _top_k_from_logits(logits.reshape(-1, logits.shape[-1])[-n_tokens:], k, renormalise)
            method = "recomputed"
        else:
            weights, index = routed
        weights = weights.float().cpu()  # (tokens, k)
        index = index.cpu()  # (tokens, k)
        order_by = torch.argsort(weights, dim=-1, descending=True)
        weights = torch.gather(weights, -1, order_by)
        index = torch.gather(index, -1, order_by)
        load = torch.bincount(index.reshape(-1), minlength=moe.num_experts)[: moe.num_experts].tolist()
        layers.append(
            LayerRouting(
                layer=layer,
                tokens=[
                    TokenRouting(position=p, token=pieces[p], experts=index[p].tolist(), weights=weights[p].tolist())
                    for p in range(n_tokens)
                ],
                load=[int(x) for x in load],
            )
        )
    layers.sort(key=lambda x: x.layer)
    unused = sum(sum(1 for c in layer.load if c == 0) for layer in layers)
    return ExpertRoutingResult(
        model=lm.source.display_name,
        tokens=pieces,
        num_experts=moe.num_experts,
        num_experts_per_tok=k,
        method=method,
        layers=layers,
        parameters=ExpertParameters(
            total=parameters.total,
            active=parameters.active,
            prompt=parameters.total - unused * moe.parameters_per_expert,
            per_expert=moe.parameters_per_expert,
        ),
    )


# ``llmscope.experts`` is this module, so the package exports the function under this name.
expert_routing = experts


def _dense(name: str) -> LlmscopeError:
    return LlmscopeError(
        f"{name} is a dense model: it has no mixture-of-experts layers to route through",
        hint=f"try a MoE model such as {MOE_EXAMPLES}",
    )


def _first_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _router_choice(output: Any, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(weights, index), each (tokens, k), from a router's ``(logits, weights, index)`` output."""
    import torch

    if not isinstance(output, (tuple, list)) or len(output) < 3:
        return None
    weights, index = output[1], output[2]
    if not (isinstance(weights, torch.Tensor) and isinstance(index, torch.Tensor)):
        return None
    if index.is_floating_point() or weights.shape != index.shape or index.dim() < 2:
        return None
    weights = weights.reshape(-1, weights.shape[-1])
    index = index.reshape(-1, index.shape[-1])
    if weights.shape[0] != n_tokens:
        return None
    return weights, index
