"""Mixture-of-experts routing: which experts each token goes to in each layer, and with what weight.

The choices are the model's own: ``capture`` reads what each block's router (the anatomy map's
``BlockAnatomy.router``) returns (in transformers 5 every top-k router returns ``(router_logits,
top_k_weights, top_k_index)``, after its own softmax / sigmoid, top-k and renormalisation). The raw
router logits come from ``output_router_logits=True``. Only if a router returns something else are the
choices recomputed from the logits the way Mixtral-style routers do it (softmax, top-k, renormalised
when the config says ``norm_topk_prob``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.loading import library_errors
from llmscope.errors import LlmscopeError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

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
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the prompt

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
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------------------------
# Finding the routers


def router_sites(model: nn.Module) -> dict[int, nn.Module]:
    """Each MoE block's router by layer index, from the anatomy map: what transformers records
    ``router_logits`` from, else the MoE block's ``gate`` / ``router``. Dense blocks have none."""
    from llmscope.forward.anatomy import anatomy

    parts = anatomy(model)
    return {block.index: parts.module(model, block.router) for block in parts.blocks if block.router}


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
    model: loading.ModelLike = None,
) -> ExpertRoutingResult:
    """Per MoE layer and token: the experts the router chose and their weights, plus expert load."""
    import torch

    from llmscope.text.prompts import check_prompt_options, encode_for, token_text
    from llmscope.config.parameters import count_parameters, mixture_of_experts

    check_prompt_options(prompt, chat=False, system=None)
    if not isinstance(model, loading.LoadedModel):
        spec = loading.load_spec(model)
        _refuse_dense_config(spec)
        model = loading.load(spec)
    lm = model
    moe = mixture_of_experts(lm.config, lm.model)
    sites = router_sites(lm.model)
    if moe is None or not sites:
        raise _dense(lm.source.display_name)
    parameters = count_parameters(lm.model, moe)

    encoded = encode_for(lm, prompt)
    pieces = [token_text(lm.tokenizer, i) for i in encoded.ids]
    calls, router_logits = _run_routers(lm, torch.tensor([encoded.ids], device=lm.device), sites)
    if not calls and not router_logits:
        raise _dense(lm.source.display_name)
    if len(router_logits) != len(calls):  # they do not pair one to one: each router's own (its first output)
        router_logits = [first for _, _, first in calls]

    renormalise = bool(getattr(lm.config, "norm_topk_prob", lm.config.model_type in ("mixtral", "minimax")))
    layers: list[LayerRouting] = []
    methods = set()
    for (layer, output, _), logits in zip(calls, router_logits):
        routing, method = _layer_routing(layer, output, logits, pieces, moe.num_experts_per_tok, moe.num_experts,
                                         renormalise)
        layers.append(routing)
        methods.add(method)
    layers.sort(key=lambda x: x.layer)
    unused = sum(sum(1 for c in layer.load if c == 0) for layer in layers)
    return ExpertRoutingResult(
        model=lm.source.display_name,
        tokens=pieces,
        num_experts=moe.num_experts,
        num_experts_per_tok=moe.num_experts_per_tok,
        method="recomputed" if "recomputed" in methods else "router",
        layers=layers,
        parameters=ExpertParameters(
            total=parameters.total,
            active=parameters.active,
            prompt=parameters.total - unused * moe.parameters_per_expert,
            per_expert=moe.parameters_per_expert,
        ),
        warnings=list(encoded.warnings),
    )


def _refuse_dense_config(spec: loading.LoadSpec) -> None:
    """A dense model is refused from its config alone, before any weights load."""
    from llmscope.config.parameters import mixture_of_experts

    source = loading.source_of(spec)
    config = loading.load_config(source, trust_remote_code=spec.trust_remote_code)
    with library_errors.translate_errors(source, what="config"):
        meta = loading.build_meta_model(config, trust_remote_code=spec.trust_remote_code)
    if mixture_of_experts(config, meta) is None:
        raise _dense(source.display_name)


def _run_routers(lm: loading.LoadedModel, ids: torch.Tensor, sites: dict[int, nn.Module]) -> tuple[list, list]:
    """One forward pass over ``ids`` (1, tokens): each router's (layer, output, its first tensor) in
    layer order, and the ``router_logits`` the model returns (empty where it returns none)."""
    import torch

    from llmscope.forward.hooks import capture

    with capture(sites, clone=False) as seen, torch.no_grad():
        out = lm.model(ids, output_router_logits=True)
    calls = [(layer, output, first) for layer in sites for output, first in zip(seen.raw[layer], seen.hidden[layer])]
    return calls, [x for x in (getattr(out, "router_logits", None) or ()) if x is not None]


def _layer_routing(
    layer: int, output: Any, logits: Any, pieces: list[str], k: int, num_experts: int, renormalise: bool
) -> tuple[LayerRouting, str]:
    """One MoE layer's choices per token, most weight first, and how they were read ("router" or
    "recomputed" from the logits when the router's output is an unusual shape)."""
    import torch

    n_tokens = len(pieces)
    routed = _router_choice(output, n_tokens)
    if routed is None:
        weights, index = _top_k_from_logits(logits.reshape(-1, logits.shape[-1])[-n_tokens:], k, renormalise)
        method = "recomputed"
    else:
        (weights, index), method = routed, "router"
    weights = weights.float().cpu()  # (tokens, k)
    index = index.cpu()  # (tokens, k)
    order_by = torch.argsort(weights, dim=-1, descending=True)
    weights = torch.gather(weights, -1, order_by)
    index = torch.gather(index, -1, order_by)
    load = torch.bincount(index.reshape(-1), minlength=num_experts)[:num_experts].tolist()
    tokens = [
        TokenRouting(position=p, token=pieces[p], experts=index[p].tolist(), weights=weights[p].tolist())
        for p in range(n_tokens)
    ]
    return LayerRouting(layer=layer, tokens=tokens, load=[int(x) for x in load]), method


# ``llmscope.forward.experts`` is this module, so the package exports the function under this name.
expert_routing = experts


def _dense(name: str) -> LlmscopeError:
    return LlmscopeError(
        f"{name} is a dense model: it has no mixture-of-experts layers to route through",
        hint=f"try a MoE model such as {MOE_EXAMPLES}",
    )


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
