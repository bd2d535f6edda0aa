"""The sites ``llmscope patch`` reads in the clean run and writes into the corrupt one, and its batches.

A site per layer: ``resid`` the block's input, ``attn`` its attention output, ``mlp`` its MLP output (each a
(tokens, hidden) tensor), ``heads`` the input of its attention output projection (tokens, heads x head size).
A cell is (layer, position) or, for heads, (layer, head); each row of a batch carries one cell's patch.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.loading.model import LoadedModel

_PART = {"resid": ("name", "input"), "attn": ("attention", "output"), "mlp": ("mlp", "output"),
         "heads": ("attention_output", "input")}


def _sites(lm: LoadedModel, parts: Any, site: str) -> dict[int, Any]:
    from llmscope.errors import ModelFormatError

    attr, _ = _PART[site]
    out = {}
    for b in parts.blocks:
        name = getattr(b, attr)
        if name is None:
            raise ModelFormatError(f"layer {b.index} of {parts.model_type} has no {site} site to patch")
        out[b.index] = parts.module(lm.model, name)
    return out


def clean_values(lm: LoadedModel, parts: Any, clean: torch.Tensor, site: str) -> dict[int, torch.Tensor]:
    """Each layer's SITE in the clean run, (tokens, width)."""
    import torch

    from llmscope.forward.hooks import capture

    with capture(_sites(lm, parts, site), _PART[site][1]) as seen, torch.no_grad():
        lm.model(inputs_embeds=clean, use_cache=False)
    return {k: seen[k][0] for k in seen.hidden}


def _rows_at_once(lm: LoadedModel, tokens: int) -> int:
    from llmscope.memory.forward_guard import SHARE, budget, check_fits, layers_work

    one = layers_work(lm.config, tokens, dtype=lm.dtype, all_tokens=False, top=1, eager=False, all_logits=True)
    check_fits(one, device=lm.device, hints=["a shorter prompt"])
    import os

    if os.environ.get("LLMSCOPE_SKIP_MEMORY_CHECK"):
        return 64
    available, _ = budget(lm.device)
    return max(1, min(64, int(SHARE * available // max(one.total, 1))))


def patch_batches(lm: LoadedModel, parts: Any, runner: Any, values: dict[int, torch.Tensor], site: str,
                  tokens: int, resid: dict[int, torch.Tensor]) -> tuple[list[list[float]], dict[str, float]]:
    """The metric of the corrupt run with each cell patched (layers x positions, or layers x heads), and the two
    identity rows: every position of the middle layer's residual input patched ("all", from RESID, the clean
    residual inputs), nothing ("none")."""
    from llmscope.progress import reporter

    layers = len(parts.blocks)
    heads = lm.config.get_text_config().num_attention_heads
    width = heads if site == "heads" else tokens
    cells: list[tuple[str, int, Any]] = [(site, layer, j) for layer in range(layers) for j in range(width)]
    middle = layers // 2
    cells += [("resid-all", middle, None), ("none", -1, None)]
    per = _rows_at_once(lm, tokens)
    out: list[float] = []
    with reporter().progress(f"Patched runs ({site})", total=len(cells)) as bar:
        for at in range(0, len(cells), per):
            batch = cells[at:at + per]
            with _patching(lm, parts, batch, values, site, heads, resid):
                out += [float(v) for v in runner.run(len(batch))]
            bar.advance(len(batch))
    grid = [out[layer * width:(layer + 1) * width] for layer in range(layers)]
    return grid, {"all": out[-2], "none": out[-1]}


@contextlib.contextmanager
def _patching(lm: LoadedModel, parts: Any, batch: list[tuple[str, int, Any]], values: dict[int, Any], site: str,
              heads: int, resid: dict[int, Any]) -> Any:
    """One replace hook per layer: row r of the batch gets its cell's clean value."""
    from llmscope.forward.hooks import replace

    by_layer: dict[tuple[str, int], list[tuple[int, Any]]] = {}
    for row, (kind, layer, j) in enumerate(batch):
        if kind == "none":
            continue
        key = ("resid", layer) if kind == "resid-all" else (site, layer)
        by_layer.setdefault(key, []).append((row, j))
    with contextlib.ExitStack() as stack:
        for (kind, layer), rows in by_layer.items():
            module = _sites(lm, parts, kind)[layer]
            clean = (resid if kind == "resid" else values)[layer]
            stack.enter_context(replace(module, _writer(rows, clean, kind, heads), _PART[kind][1]))
        yield


def _writer(rows: list[tuple[int, Any]], clean: Any, kind: str, heads: int) -> Any:
    def write(hidden: Any) -> Any:
        hidden = hidden.clone()
        for row, j in rows:
            if j is None:  # every position
                hidden[row] = clean.to(hidden.dtype)
            elif kind == "heads":
                d = hidden.shape[-1] // heads
                hidden[row, :, j * d:(j + 1) * d] = clean[:, j * d:(j + 1) * d].to(hidden.dtype)
            else:
                hidden[row, j] = clean[j].to(hidden.dtype)
        return hidden

    return write
