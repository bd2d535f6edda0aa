"""What each layer computes: hidden-state shapes and norms, the logit lens, and the KV cache.

One forward pass with ``output_hidden_states=True`` (and ``use_cache=True`` for decoders). The logit
lens applies the model's own final norm and LM head (and final logit softcapping, where the config
has it) to every layer's hidden state. transformers returns the last hidden state *after* the final
norm; a hook on the final norm captures its input, so every layer goes through the same lens and the
last layer's prediction is the model's own next token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

from llmscope import loading
from llmscope.loading import model_calls
from llmscope.errors import ModelFormatError, UsageError
from llmscope.loading.model import LoadedModel
from llmscope.text.prompts import EncodedPrompt, check_prompt_options, encode_for, token_text

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from llmscope.forward.anatomy import Anatomy


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class LensPrediction:
    token: str
    id: int
    prob: float


@dataclasses.dataclass(frozen=True)
class LensCell:
    """One cell of the --all-tokens grid: the lens's top token there, and its runners-up."""

    token: str
    id: int
    prob: float
    top: list[LensPrediction]  # the top few, best first (the first is the cell's own token)


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One entry of ``hidden_states``: index 0 is the embeddings, index i the output of layer i-1."""

    index: int  # index into outputs.hidden_states
    name: str  # the module that produced it: "model.embed_tokens", "model.layers.3"
    shape: list[int]  # (batch, tokens, hidden)
    norm: float  # L2 norm of the focus token's hidden state (before the final norm)
    delta_norm: float | None  # L2 norm of what this layer added at the focus token
    cosine_to_previous: float | None  # cosine between this and the previous hidden state there
    lens: LensPrediction  # the logit lens at the focus token
    lens_top: list[LensPrediction]  # its top few


@dataclasses.dataclass(frozen=True)
class HeadOutput:
    """The last step of the pipeline: the LM head's logits, the row of the focus token, its argmax."""

    shape: list[int]  # (batch, tokens, vocab): what the head gives for the whole prompt
    computed: list[int]  # what this run asked for: (batch, 1, vocab) when only the last row is needed
    position: int  # the row taken
    prediction: LensPrediction  # argmax of that row, softmax probability: the model's next token


KV_AXES = ("batch", "kv_heads", "tokens", "head_dim")  # the axes of a cached key or value


@dataclasses.dataclass(frozen=True)
class CacheLayer:
    layer: int
    key_shape: list[int]  # (batch, key/value heads, tokens kept, head dim)
    value_shape: list[int]
    bytes: int
    layer_type: str | None  # full_attention / sliding_attention, where the config says


@dataclasses.dataclass(frozen=True)
class KVCache:
    cache_class: str
    dtype: str
    layers: list[CacheLayer]
    bytes: int  # keys and values of every layer, for this prompt
    axes: tuple[str, ...] = KV_AXES  # of every key_shape and value_shape


@dataclasses.dataclass(frozen=True)
class LayerReport:
    model: str
    kind: Literal["causal", "masked"]
    prompt: str
    input_ids: list[int]
    tokens: list[str]
    dtype: str
    position: int  # the focus token: the last one (causal), the first mask (masked LM), or the last
    final_norm: str | None  # module name of the final norm the lens applies
    lm_head: str  # module name of the head the lens applies
    softcapping: float | None
    layers: list[LayerRow]
    final_check: float  # max |lens probs - model probs| at the last layer (0 up to rounding)
    grid: list[list[LensCell]] | None  # --all-tokens: [hidden_states index][position]
    kv_cache: KVCache | None
    head_output: HeadOutput | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)  # e.g. two BOS tokens at the start

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.grid is None:
            del out["grid"]
        return out


# --------------------------------------------------------------------------------------------
# The core function


def layers(
    prompt: str,
    *,
    model: loading.ModelLike = None,
    all_tokens: bool = False,
    chat: bool = False,
    system: str | None = None,
    top: int = 3,
) -> LayerReport:
    """Run PROMPT once with hidden states kept: per layer shape, norm, change and logit lens; the KV cache."""
    import torch

    from llmscope.forward.anatomy import anatomy

    check_prompt_options(prompt, chat=chat, system=system)
    if top < 1:
        raise UsageError(f"`top={top}`: must be at least 1")
    lm = loading.load(model)
    encoded = _encode_prompt(lm, prompt, chat=chat, system=system)
    ids = encoded.ids
    tokenizer = lm.tokenizer
    masked = lm.masked
    if masked and tokenizer.mask_token_id is not None and tokenizer.mask_token_id in ids:
        position = ids.index(tokenizer.mask_token_id)
    else:
        position = len(ids) - 1

    parts = anatomy(lm.model)  # where the final norm, the blocks and the head are
    norm_found = final_norm(lm, parts)
    last_only = not masked and model_calls.supports(lm.model, "logits_to_keep")  # the focus is the last token
    _check_work(lm, len(ids), all_tokens=all_tokens, top=top, all_logits=not last_only)
    kv = not masked and model_calls.takes_kv_cache(lm.model)  # a recurrent model's state is no KV cache
    out, hidden = _forward(lm, ids, norm_found, last_only=last_only, kv=kv)
    head_name, cap, lens = _lens(lm, parts, norm_found)
    rows, last_probs = _rows(lm, parts, hidden, position, lens, top)
    row = -1 if last_only else position
    model_probs = torch.softmax(out.logits[0, row], dim=-1)  # (vocab,)
    best = int(torch.argmax(model_probs))
    head_output = HeadOutput(
        shape=[1, len(ids), int(out.logits.shape[-1])], computed=list(out.logits.shape), position=position,
        prediction=LensPrediction(token=token_text(tokenizer, best), id=best, prob=float(model_probs[best])),
    )
    final_check = float((last_probs.to(model_probs.device) - model_probs).abs().max())
    grid = _grid(tokenizer, hidden, lens, top) if all_tokens else None

    return LayerReport(
        model=lm.source.display_name,
        kind="masked" if masked else "causal",
        prompt=prompt,
        input_ids=ids,
        tokens=[token_text(tokenizer, t) for t in ids],
        dtype=lm.dtype,
        position=position,
        final_norm=norm_found[0] if norm_found is not None else None,
        lm_head=head_name,
        softcapping=cap,
        layers=rows,
        final_check=final_check if math.isfinite(final_check) else float("nan"),
        grid=grid,
        kv_cache=_cache_report(model_calls.returned_cache(lm.model, out), lm.config) if kv else None,
        head_output=head_output,
        warnings=list(encoded.warnings),
    )


def _check_work(lm: LoadedModel, tokens: int, *, all_tokens: bool, top: int, all_logits: bool) -> None:
    """Refuse, before the forward pass, hidden states, logits and a lens grid that cannot fit."""
    from llmscope.memory.forward_guard import check_fits, layers_work

    eager = model_calls.attn_implementation(lm.model) == "eager"
    estimate = layers_work(lm.config, tokens, dtype=lm.dtype, all_tokens=all_tokens, top=top, eager=eager,
                           all_logits=all_logits)
    hints = ["a shorter prompt"] + (["without `all_tokens=True` (the lens at every position)"] if all_tokens else [])
    check_fits(estimate, device=lm.device, hints=hints)


def final_norm(lm: LoadedModel, parts: Anatomy) -> tuple[str, nn.Module] | None:
    """The decoder's final norm (its name and module), whose input is the last block's output; None for
    an encoder (BERT's layers end in their own norms) or a model without one."""
    if lm.masked or parts.final_norm is None:
        return None
    return parts.final_norm, parts.module(lm.model, parts.final_norm)


def hidden_states(
    lm: LoadedModel, input_ids: torch.Tensor, norm_found: tuple[str, nn.Module] | None, **model_kwargs: Any
) -> tuple[Any, list[torch.Tensor]]:
    """One forward pass keeping every hidden state: [0] the embedding output, [i + 1] block i's output
    (the numbering of every view: "embed", then layer 0, 1, ...). transformers hands back the last one
    after the final norm; it is replaced by the norm's input, the last block's own output."""
    import torch

    from llmscope.forward.hooks import capture

    with contextlib.ExitStack() as hooks, torch.inference_mode():
        if norm_found is not None:
            into = hooks.enter_context(capture(norm_found[1], "input", clone=False))
            out_of = hooks.enter_context(capture(norm_found[1], "output", clone=False))
        out = lm.model(input_ids=input_ids, output_hidden_states=True, **model_kwargs)
    hidden = list(out.hidden_states)  # num_layers + 1 of (batch, tokens, hidden)
    if norm_found is not None and into.hidden[0] and out_of.hidden[0]:
        if out_of.value.shape == hidden[-1].shape and torch.equal(out_of.value, hidden[-1]):
            hidden[-1] = into.value
    return out, hidden


def _forward(
    lm: LoadedModel, ids: list[int], norm_found: tuple[str, nn.Module] | None, *, last_only: bool = False,
    kv: bool = False,
) -> tuple[Any, list[torch.Tensor]]:
    """``hidden_states`` of the prompt (and the KV cache for a decoder). ``last_only``: logits for the
    last position only (the lens computes the others itself)."""
    import torch

    input_ids = torch.tensor([ids], device=lm.device)  # (1, tokens)
    if lm.masked:
        return hidden_states(lm, input_ids, norm_found)
    keep = {"logits_to_keep": 1} if last_only else {}
    cache = model_calls.cache_kwargs(lm.model, model_calls.new_cache(lm.model)) if kv else {}
    return hidden_states(lm, input_ids, norm_found, **cache, **keep)


def _lens(lm: LoadedModel, parts: Anatomy, norm_found: tuple[str, nn.Module] | None
          ) -> tuple[str, float | None, Any]:
    """The LM head's name, the final softcapping, and the lens: (..., hidden) -> (..., vocab) logits,
    as the model computes them from its last layer (its head, then its logit scaling and soft-cap)."""
    import torch

    if parts.head is None:
        raise ModelFormatError(f"{lm.source.display_name}: no LM head found for the logit lens")
    head = parts.module(lm.model, parts.head)
    norm = norm_found[1] if norm_found is not None else None

    def lens(h: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            h = h.to(next(head.parameters()).device)
            if norm is not None:
                h = norm(h)
            return parts.scale_logits(head(h))

    return parts.head, parts.final_logit_softcapping, lens


def _embed_name(parts: Anatomy) -> str:
    name = parts.embedding or "embeddings"
    parent = name.rpartition(".")[0]
    return parent if parent.endswith("embeddings") else name  # BERT: the block (words + positions + norm)


def _rows(lm: LoadedModel, parts: Anatomy, hidden: list[torch.Tensor], position: int, lens: Any, top: int
          ) -> tuple[list[LayerRow], torch.Tensor]:
    """One row per hidden state at the focus position, and the last layer's lens probabilities."""
    import torch

    layer_list = parts.block_list if len(parts.blocks) == len(hidden) - 1 else None
    embed_name = _embed_name(parts)
    rows: list[LayerRow] = []
    previous = probs = None
    for index, h in enumerate(hidden):
        vector = h[0, position]  # (hidden,)
        probs = torch.softmax(lens(vector), dim=-1)  # (vocab,)
        delta = cosine = None
        if previous is not None:
            delta = float(torch.linalg.vector_norm((vector - previous).double()))
            cosine = float(torch.nn.functional.cosine_similarity(vector.double(), previous.double(), dim=0))
        name = embed_name if index == 0 else (f"{layer_list}.{index - 1}" if layer_list else f"layer {index - 1}")
        best = torch.topk(probs, min(top, probs.shape[-1]))
        tops = [LensPrediction(token=token_text(lm.tokenizer, i), id=i, prob=p)
                for p, i in zip(best.values.tolist(), best.indices.tolist())]
        rows.append(
            LayerRow(
                index=index, name=name, shape=list(h.shape), norm=float(torch.linalg.vector_norm(vector.double())),
                delta_norm=delta, cosine_to_previous=cosine, lens=tops[0], lens_top=tops,
            )
        )
        previous = vector
    return rows, probs


def _grid(tokenizer: Any, hidden: list[torch.Tensor], lens: Any, top: int) -> list[list[LensCell]]:
    """--all-tokens: the lens's top tokens at every position of every hidden state, a chunk of
    positions at a time (``work_estimate.lens_chunk``: at most 64 MiB of logits at once)."""
    import torch

    from llmscope.progress import reporter
    from llmscope.memory.forward_guard import lens_chunk

    grid = []
    texts: dict[int, str] = {}  # token text per id, decoded once
    with reporter().progress("Logit lens at every position", total=len(hidden)) as bar:
        for h in hidden:
            row: list[LensCell] = []
            start, step = 0, 1  # the first position tells the vocabulary size, then chunks of lens_chunk
            while start < h.shape[1]:
                probs = torch.softmax(lens(h[0, start : start + step]), dim=-1)  # (chunk, vocab)
                start, step = start + step, lens_chunk(probs.shape[-1], h.shape[1])
                best = torch.topk(probs, min(top, probs.shape[-1]), dim=-1)  # (chunk, top)
                del probs
                for values, indices in zip(best.values.tolist(), best.indices.tolist()):
                    for i in indices:
                        if i not in texts:
                            texts[i] = token_text(tokenizer, i)
                    tops = [LensPrediction(token=texts[i], id=i, prob=p) for p, i in zip(values, indices)]
                    row.append(LensCell(token=tops[0].token, id=tops[0].id, prob=tops[0].prob, top=tops))
            grid.append(row)
            bar.advance()
    return grid


def _encode_prompt(lm: LoadedModel, prompt: str, *, chat: bool, system: str | None) -> EncodedPrompt:
    """The prompt's ids as the model reads them (the chat template applied with ``chat``), checked."""
    if chat and lm.masked:
        raise UsageError("`chat=True` is for chat (causal) models; this is a masked LM")
    return encode_for(lm, prompt, chat=chat, system=system)


def _cache_report(cache: Any, config: Any) -> KVCache | None:
    if cache is None:
        return None
    from llmscope.config.values import text_config

    layer_types = getattr(text_config(config), "layer_types", None) or []
    rows: list[CacheLayer] = []
    dtype = None
    for i, layer in enumerate(getattr(cache, "layers", [])):
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if keys is None or values is None or keys.numel() == 0:
            continue
        dtype = str(keys.dtype).replace("torch.", "")
        size = keys.numel() * keys.element_size() + values.numel() * values.element_size()
        rows.append(
            CacheLayer(
                layer=i,
                key_shape=list(keys.shape),
                value_shape=list(values.shape),
                bytes=size,
                layer_type=layer_types[i] if i < len(layer_types) else None,
            )
        )
    return KVCache(cache_class=type(cache).__name__, dtype=dtype or "-", layers=rows, bytes=sum(r.bytes for r in rows))


# The name in ``llmscope``'s lazy API: ``llmscope.forward.layers`` is this module once it is imported.
layer_report = layers
