"""Attention weights of one layer and head, and where one query token looks in every layer.

The model runs with transformers' eager attention (the only implementation that materialises the
weights); the weights are exactly what the model's softmax produced, causal and sliding-window masks
included. Only what is shown is kept: a hook on the shown layer's attention module, the site the
anatomy map gives (and, with ``--token``, one query row of every layer) instead of ``output_attentions``
for every layer, and the memory the pass takes is estimated first (``work_estimate``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.loading import model_calls
from llmscope.errors import ModelFormatError, UsageError
from llmscope.forward.attention_kind import AttentionKind, attention_kind, check_indices, layer_type, resolve_layer
from llmscope.text.prompts import check_prompt_options, encode_for, token_text

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from llmscope.loading.model import LoadedModel


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class AttendedToken:
    position: int
    token: str
    weight: float


@dataclasses.dataclass(frozen=True)
class LayerRanking:
    """Where the query token looks in one layer: keys ranked by attention weight."""

    layer: int
    layer_type: str | None  # transformers' name: full_attention, sliding_attention
    top: list[AttendedToken]


@dataclasses.dataclass(frozen=True)
class LayerHeads:
    """Every head of one layer (``--all-layers``): heads[h] is that head's (query, key) matrix."""

    layer: int
    layer_type: str | None
    heads: list[list[list[float]]]  # (heads, query, key), rounded to 4 decimals


@dataclasses.dataclass(frozen=True)
class AttentionResult:
    """``llmscope attention``: one layer's weights (query rows x key columns) for one head or the mean."""

    source: str
    tokens: list[str]
    layer: int  # 0-based, after resolving a negative index
    head: int | None  # None: mean over heads
    weights: list[list[float]]  # (query, key)
    num_layers: int
    kind: AttentionKind
    layer_type: str | None
    query: AttendedToken | None = None  # with --token: the query token
    ranking: list[LayerRanking] | None = None  # with --token: one entry per layer
    layers: list[LayerHeads] | None = None  # with all_layers: every layer, every head
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the prompt

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.source, "tokens": self.tokens, "layer": self.layer, "head": self.head,
            "weights": self.weights, "kind": dataclasses.asdict(self.kind), "warnings": self.warnings,
        }
        if self.layers is not None:
            data["layers"] = [dataclasses.asdict(entry) for entry in self.layers]
        if self.query is not None:
            data["query"] = {"position": self.query.position, "token": self.query.token}
            data["ranking"] = [
                {
                    "layer": r.layer,
                    "layer_type": r.layer_type,
                    "top": [{"position": t.position, "token": t.token, "weight": t.weight} for t in r.top],
                }
                for r in self.ranking or []
            ]
        return data


# --------------------------------------------------------------------------------------------
# Tokens


def token_pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token as the text it stands for (``prompts.token_text``: special tokens by name)."""
    return [token_text(tokenizer, i) for i in ids]


def find_query(token: str, pieces: list[str], offsets: list[tuple[int, int]] | None, prompt: str) -> int:
    """The position of WORD_OR_POSITION: an integer (negative from the end) or a word of the prompt.

    A word is found in the prompt text (whole word, case-insensitive, first occurrence) and mapped
    to its last token through the tokenizer's offsets; without offsets, token pieces are compared.
    """
    n = len(pieces)
    text = token.strip()
    if re.fullmatch(r"-?\d+", text):
        position = int(text)
        index = position + n if position < 0 else position
        if not 0 <= index < n:
            raise UsageError(f"`token={token}`: the prompt has {n} tokens", hint=f"use a position from 0 to {n - 1}")
        return index
    if not text:
        raise UsageError("`token` needs a word of the prompt or a token position")
    if offsets is not None:
        match = re.search(rf"(?<!\w){re.escape(text)}(?!\w)", prompt, flags=re.IGNORECASE) or re.search(
            re.escape(text), prompt, flags=re.IGNORECASE
        )
        if match:
            covering = [i for i, (a, b) in enumerate(offsets) if b > a and a < match.end() and b > match.start()]
            if covering:
                return covering[-1]
    for i, piece in enumerate(pieces):
        if piece.strip().lower() == text.lower():
            return i
    shown = " ".join(p.strip() or repr(p) for p in pieces[:20])
    raise UsageError(f"`token={token!r}` is not a word of the prompt", hint=f"the tokens are: {shown}")


# --------------------------------------------------------------------------------------------
# Running the model


@contextlib.contextmanager
def eager_attention(lm: LoadedModel) -> Iterator[bool]:
    """Switch a loaded model to eager attention for the duration; yields True if it was switched."""
    current = model_calls.attn_implementation(lm.model)
    if current in (None, "eager"):
        yield False
        return
    lm.model.set_attn_implementation("eager")
    try:
        yield True
    finally:
        lm.model.set_attn_implementation(current)


def attention(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    layer: int = -1,
    head: int | None = None,
    token: str | None = None,
    top: int = 5,
    all_layers: bool = False,
) -> AttentionResult:
    """Attention weights of LAYER (negative: from the end) for HEAD, or the mean over heads.

    With ``token`` (a word of the prompt or a position), also rank for that query token the keys
    it attends to most in every layer (``top`` of them). With ``all_layers``, also every head of
    every layer (``layers``), rounded to 4 decimals: what the interactive page draws.
    """
    check_prompt_options(prompt, chat=False, system=None)
    if top < 1:
        raise UsageError(f"`top={top}`: must be at least 1")
    lm = eager_model(model, layer, head)
    config = lm.config
    num_layers, num_heads = check_indices(config, layer, head)
    index = resolve_layer(layer, num_layers)
    kind = attention_kind(config, causal=not lm.masked)

    encoded = encode_for(lm, prompt)
    pieces = token_pieces(lm.tokenizer, encoded.ids)
    query = find_query(token, pieces, encoded.offsets, prompt) if token is not None else None
    modules = attention_sites(lm.model, num_layers)  # None: read every layer through output_attentions
    check_attention_work(lm, len(encoded.ids), kept=num_layers if modules is None or all_layers else 1, all_layers=all_layers)

    def pick(weights: torch.Tensor) -> torch.Tensor:  # (heads, q, k) -> (q, k); (heads, k) -> (k,)
        weights = weights.float()
        return weights[head] if head is not None else weights.mean(dim=0)

    shown, rows, full = _capture(lm, encoded.ids, modules, index, query, all_layers, pick)
    ranking = None
    query_token = None
    if query is not None:
        query_token = AttendedToken(position=query, token=pieces[query], weight=1.0)
        ranking = [_rank(li, row, top, kind, pieces) for li, row in enumerate(rows)]
    return AttentionResult(
        source=lm.source.display_name,
        tokens=pieces,
        layer=index,
        head=head,
        weights=shown.cpu().tolist(),
        num_layers=num_layers,
        kind=kind,
        layer_type=layer_type(kind, index),
        query=query_token,
        ranking=ranking,
        layers=[_all_heads(li, w, kind) for li, w in enumerate(full)] if all_layers else None,
        warnings=list(encoded.warnings),
    )


def check_attention_work(lm: LoadedModel, tokens: int, *, kept: int, all_layers: bool) -> None:
    """Refuse, before the forward pass, attention weights that cannot fit in memory."""
    from llmscope.loading.model_calls import supports
    from llmscope.memory.forward_guard import attention_work, check_fits

    estimate = attention_work(lm.config, tokens, dtype=lm.dtype, kept_layers=kept, all_layers=all_layers,
                              all_logits=not supports(lm.model, "logits_to_keep"))
    hints = ["a shorter prompt: the weights grow with the square of its tokens"]
    if all_layers:
        hints.insert(0, "without `all_layers=True` (every head of every layer, as an HTML page keeps them)")
    check_fits(estimate, device=lm.device, hints=hints)


def _all_heads(layer: int, weights: Any, kind: AttentionKind) -> LayerHeads:
    """One layer's (heads, query, key) weights as plain lists, 4 decimals (pages stay small)."""
    import torch

    rounded = torch.round(weights.double(), decimals=4).cpu().tolist()  # (heads, query, key)
    heads = [[[v if v else 0 for v in row] for row in head] for head in rounded]  # masked keys: 0, not 0.0
    return LayerHeads(layer=layer, layer_type=layer_type(kind, layer), heads=heads)


def eager_model(model: loading.ModelLike, layer: int, head: int | None) -> LoadedModel:
    """MODEL ready for reading attention weights: a LoadedModel as it is (``eager_attention`` switches it
    for a call), anything else loaded with eager attention once its layer and head are checked."""
    return model if isinstance(model, loading.LoadedModel) else _load_eager(loading.load_spec(model), layer, head)


def _load_eager(spec: loading.LoadSpec, layer: int, head: int | None) -> LoadedModel:
    """Check --layer and --head against the config before loading any weights, then load with eager
    attention (the implementation that materialises the weights)."""
    from llmscope.progress import reporter

    config = loading.load_config(loading.source_of(spec), trust_remote_code=spec.trust_remote_code)
    check_indices(config, layer, head)
    reporter().notice("Loading with eager attention (needed to read attention weights)")
    return loading.load(spec, attn_implementation="eager")


def attention_sites(model: nn.Module, num_layers: int) -> list[nn.Module] | None:
    """Every block's softmax self-attention module, in order, from the anatomy map (the modules
    transformers records attentions from); None where a block has none or the blocks are not the
    config's layers (then every layer's weights come back through ``output_attentions``)."""
    from llmscope.forward.anatomy import anatomy

    parts = anatomy(model)
    sites = [block.attention for block in parts.blocks]
    if len(sites) != num_layers or not all(sites):
        return None
    return [parts.module(model, site) for site in sites]


def _capture(lm: LoadedModel, ids: list[int], modules: list[nn.Module] | None, index: int, query: int | None,
             all_layers: bool, pick: Any) -> tuple[Any, list[Any], list[Any]]:
    """One forward pass keeping only what is shown: LAYER's (query, key) matrix, the query row of
    every layer with ``query``, every head of every layer with ``all_layers``. Hooks on the
    attention modules take each layer's (batch, heads, query, key) weights as it is computed, so
    the other layers' weights are freed at once (``capture`` would keep every output it saw)."""
    import torch

    from llmscope.forward.hooks import watch
    from llmscope.loading.model_calls import supports
    from llmscope.progress import reporter

    shown: dict[int, Any] = {}
    rows: dict[int, Any] = {}
    full: dict[int, Any] = {}

    def take(layer: int, weights: Any) -> None:  # weights: (batch, heads, query, key)
        if layer == index:
            shown[layer] = pick(weights[0])
        if query is not None:
            rows[layer] = pick(weights[0, :, query])  # (key,)
        if all_layers:
            full[layer] = weights[0].detach().clone()

    def seen(layer: int, _hidden: Any, output: Any) -> None:  # output: (attention output, weights, ...)
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if getattr(weights, "ndim", None) == 4:
            take(layer, weights)

    wanted = range(len(modules)) if modules is not None and (query is not None or all_layers) else [index]
    sites = {layer: modules[layer] for layer in wanted} if modules is not None else {}
    input_ids = torch.tensor([ids], device=lm.device)  # (1, tokens)
    keep = {"logits_to_keep": 1} if supports(lm.model, "logits_to_keep") else {}
    with watch(sites, seen, "output"), eager_attention(lm) as switched, torch.no_grad():
        if switched:
            reporter().notice("Switched the model to eager attention for this call (to read the weights)")
        out = lm.model(input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False,
                       output_attentions=modules is None, **keep)
    if modules is None:
        for layer, weights in enumerate(out.attentions or ()):
            if weights is not None:
                take(layer, weights)
    if index not in shown and modules is not None:  # hooks saw no weights: ask the model for them all
        return _capture(lm, ids, None, index, query, all_layers, pick)
    if index not in shown:
        raise ModelFormatError(
            f"{lm.source.display_name} did not return attention weights",
            hint="its attention implementation may not support output_attentions",
        )
    count = len(modules) if modules is not None else len(out.attentions)
    return shown[index], [rows[i] for i in range(count) if i in rows], [full[i] for i in range(count) if i in full]


def _rank(layer: int, row: Any, top: int, kind: AttentionKind, pieces: list[str]) -> LayerRanking:
    """The keys one query row (key,) attends to most in LAYER."""
    import torch

    values, positions = torch.topk(row, min(top, int(row.shape[0])))
    return LayerRanking(
        layer=layer,
        layer_type=layer_type(kind, layer),
        top=[
            AttendedToken(position=int(p), token=pieces[int(p)], weight=float(v))
            for v, p in zip(values.tolist(), positions.tolist())
        ],
    )


# ``llmscope.forward.attention`` is this module, so the package exports the function under this name.
attention_weights = attention
