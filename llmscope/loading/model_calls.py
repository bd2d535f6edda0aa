"""How to call the installed transformers' forward: the keywords it takes, and how it passes and returns a cache.

transformers 5.24 renamed a model's cache keyword from ``past_key_values`` (Mamba-style models:
``cache_params``) to ``cache``, and the output field likewise; the old names still work until 5.40,
with a ``FutureWarning``. Every llmscope forward that passes a cache goes through this module, so the
name is chosen once, from the model's own signature, whatever the release, and the warning never fires.

"A KV cache" means keys and values that let a step feed only the new token. A pure recurrent model
(Mamba, Mamba2, RWKV, xLSTM) keeps a state instead, which the decode loops do not batch or reorder:
they run its whole sequence at each step, which gives the same tokens (``takes_kv_cache`` is False).
"""

from __future__ import annotations

import inspect
from typing import Any

from llmscope.progress import reporter

# The forward keyword of a KV cache, newest name first (``cache`` since transformers 5.24).
CACHE_KEYWORDS = ("cache", "past_key_values")


def forward_parameters(model: Any) -> frozenset[str]:
    """The keyword names the model's ``forward`` declares."""
    return frozenset(inspect.signature(model.forward).parameters)


def supports(model: Any, name: str) -> bool:
    """Whether the model's forward takes the keyword NAME (e.g. ``logits_to_keep``)."""
    return name in forward_parameters(model)


def cache_keyword(model: Any) -> str | None:
    """The keyword this model's forward takes its cache as (``cache`` or ``past_key_values``), or None."""
    parameters = forward_parameters(model)
    return next((name for name in CACHE_KEYWORDS if name in parameters), None)


def takes_kv_cache(model: Any) -> bool:
    """Whether the model's forward takes a KV cache: a cache keyword, and a cache laid out by
    transformers for its config that is not all recurrent state (a hybrid's attention layers count)."""
    if cache_keyword(model) is None:
        return False
    try:
        from transformers.cache_utils import DynamicLayer, LinearAttentionCacheLayerMixin

        layers = new_cache(model).layers
    except Exception:  # noqa: BLE001 - a config DynamicCache cannot lay out: take the keyword's word for it
        return True
    return not layers or not all(
        isinstance(layer, LinearAttentionCacheLayerMixin) and not isinstance(layer, DynamicLayer) for layer in layers
    )


def new_cache(model: Any) -> Any:
    """An empty ``DynamicCache`` laid out for the model's config (sliding layers, hybrid state layers)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def kv_cache_or_notice(model: Any, wanted: bool = True) -> bool:
    """``takes_kv_cache`` for a decode loop, saying in one notice when a wanted cache cannot be used."""
    if not wanted:
        return False
    if takes_kv_cache(model):
        return True
    reporter().notice(f"{type(model).__name__} keeps no KV cache (a recurrent state, or no cache keyword): "
                      "each step runs the whole sequence again")
    return False


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """The keywords that hand CACHE to the model's forward and ask for it back filled."""
    keyword = cache_keyword(model)
    if keyword is None:
        raise TypeError(f"{type(model).__name__}.forward takes no KV cache")
    return {keyword: cache, "use_cache": True}


def returned_cache(model: Any, out: Any) -> Any:
    """The cache a forward of MODEL returned in OUT (None when it returned none), under the field name
    that goes with the keyword it took."""
    keyword = cache_keyword(model)
    if keyword is None:
        return None
    return out.get(keyword) if hasattr(out, "get") else getattr(out, keyword, None)


# --------------------------------------------------------------------------------------------
# transformers internals read where no public API says the same (checked against 5.23 and 5.24)


def attn_implementation(model_or_config: Any) -> str | None:
    """The attention kernel a model (or its config) runs: "eager", "sdpa", "flash_attention_2"...
    (``config._attn_implementation``; ``set_attn_implementation`` is the public way to change it)."""
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "_attn_implementation", None)


def recorded_outputs(module: Any, key: str) -> Any:
    """What a transformers module class declares it records for ``output_<key>`` (``attentions``,
    ``router_logits``): the ``_can_record_outputs`` entry of its class, or None."""
    cls = module if isinstance(module, type) else type(module)
    return (getattr(cls, "_can_record_outputs", None) or {}).get(key)
