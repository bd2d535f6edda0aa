"""``llmscope patch``: which activations the answer depends on (activation patching).

Run CLEAN and CORRUPT (the same number of tokens), then the corrupt prompt again with one activation
replaced by its value in the clean run, for every layer and position (``site="resid"``: the residual stream
entering the layer; ``attn`` / ``mlp``: that layer's attention or MLP output) or every head (``heads``: its
output at every position, the slice of the attention output projection's input it owns). The metric is the
logit difference target - versus at the last position (target: the clean prompt's top token; versus: the
corrupt prompt's, or, when the two agree, the target's log-probability is the metric), normalised so that
0 is the corrupt run and 1 the clean one.

Patched runs go in batches: each row of a batch is the corrupt prompt with its own patch, applied by one hook
per layer (``forward/hooks.py``'s ``replace``), as many rows as the memory estimate allows. Two identity checks
come with every result: patching every position of a layer's residual input gives the clean metric, patching
nothing gives the corrupt one. ``noise=WORD`` corrupts CLEAN instead by adding Gaussian noise (3 x the standard
deviation of the embedding matrix, seeded) to that word's token embeddings, the causal-tracing recipe.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.loading.model import LoadedModel

SITES = ("resid", "attn", "mlp", "heads")
NOISE_SCALE = 3.0
MAX_ROWS = 64  # patched rows in one forward pass at most


@dataclasses.dataclass(frozen=True)
class PatchResult:
    model: str
    clean_prompt: str
    corrupt_prompt: str | None  # None with noise
    noise: str | None
    site: str
    metric: str  # "logit_diff" or "logprob"
    target: str
    target_id: int
    versus: str | None
    versus_id: int | None
    clean: float
    corrupt: float
    tokens: list[str]  # the clean prompt's tokens
    grid: list[list[float | None]]  # layers x positions (heads: layers x heads), normalised; None: clean == corrupt
    raw: list[list[float]]
    check: dict[str, float]  # {"all": |patching every position - clean|, "none": |patching nothing - corrupt|}
    seed: int
    dtype: str
    warnings: list[str] = dataclasses.field(default_factory=list)

    def strongest(self, n: int) -> list[tuple[int, int, float]]:
        cells = [(i, j, v) for i, row in enumerate(self.grid) for j, v in enumerate(row) if v is not None]
        return sorted(cells, key=lambda c: -abs(c[2]))[:n]


def check_options(clean: str, *, corrupt: str | None, noise: str | None, site: str, target: str | None,
                  versus: str | None) -> None:
    from llmscope.text.prompts import check_prompt_options

    check_prompt_options(clean, chat=False, system=None)
    if site not in SITES:
        raise UsageError(f"`site={site!r}`: unknown site", hint=f"use one of: {', '.join(SITES)}")
    if (corrupt is None) == (noise is None):
        raise UsageError("give `corrupt` or `noise`, one of them", hint="e.g. --corrupt 'The Colosseum is in'")
    if corrupt is not None:
        check_prompt_options(corrupt, chat=False, system=None)
    if noise is not None and not noise.strip():
        raise UsageError("`noise=''`: name a word of the clean prompt")
    if target == "" or versus == "":
        raise UsageError("`target` and `versus` must not be empty")
    if target is not None and versus == target:
        raise UsageError(f"`versus={versus!r}` is the target itself")


def _one_token(lm: LoadedModel, text: str, option: str) -> int:
    from llmscope.explain.contributions import _one_token as one

    return one(lm, text, option)


def _first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


class _Runner:
    """Forward passes of the corrupt input (token ids or embeddings) with patches, reading the metric."""

    def __init__(self, lm: LoadedModel, parts: Any, corrupt: Any, target: int, versus: int | None) -> None:
        self.lm, self.parts, self.corrupt, self.target, self.versus = lm, parts, corrupt, target, versus

    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        import torch

        last = logits[:, -1].double()
        if self.versus is None:
            return torch.log_softmax(last, -1)[:, self.target]
        return last[:, self.target] - last[:, self.versus]

    def run(self, rows: int, hooks: Any = None) -> torch.Tensor:
        import contextlib

        import torch

        kwargs = {"inputs_embeds": self.corrupt.expand(rows, -1, -1)}
        with torch.no_grad(), (hooks or contextlib.nullcontext()):
            return self.metric(self.lm.model(**kwargs, use_cache=False).logits)


def _embeds(lm: LoadedModel, parts: Any, ids: list[int]) -> torch.Tensor:
    import torch

    with torch.no_grad():
        return parts.module(lm.model, parts.embedding)(torch.tensor([ids], device=lm.device))


def _noised(lm: LoadedModel, parts: Any, ids: list[int], offsets: Any, text: str, word: str, seed: int
            ) -> torch.Tensor:
    import torch

    from llmscope.forward.word_options import find_word

    span = find_word(text, word)
    if span is None or offsets is None:
        raise UsageError(f"`noise={word!r}` is not a word of the clean prompt")
    positions = [i for i, (s, e) in enumerate(offsets) if s < span[1] and e > span[0] and e > s]
    embed = parts.module(lm.model, parts.embedding)
    std = float(embed.weight.detach().float().std())
    scale = float(parts.embed_scale or 1.0) if parts.embed_scale_site == parts.embedding else 1.0
    out = _embeds(lm, parts, ids).clone()
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((len(positions), out.shape[-1]), generator=g).to(out.dtype) * NOISE_SCALE * std * scale
    out[0, positions] += noise.to(out.device)
    return out


def patch(clean: str, *, model: loading.ModelLike = None, corrupt: str | None = None, noise: str | None = None,
          site: str = "resid", target: str | None = None, versus: str | None = None, seed: int = 0) -> PatchResult:
    """Activation patching of CLEAN into CORRUPT (or into CLEAN with NOISE on a word), at SITE."""
    import torch

    from llmscope.explain.patch_sites import clean_values, patch_batches
    from llmscope.explain.why import load_float32
    from llmscope.forward.anatomy import anatomy, require
    from llmscope.text.prompts import encode_for, token_text

    check_options(clean, corrupt=corrupt, noise=noise, site=site, target=target, versus=versus)
    lm, warnings = load_float32(model, task="predict a next token to patch")
    parts = anatomy(lm.model)
    require(parts, "embedding", *(("attention",) if site in ("attn", "heads") else ("mlp",) if site == "mlp" else ()))
    enc = encode_for(lm, clean)
    ids = enc.ids
    if corrupt is not None:
        bad = encode_for(lm, corrupt).ids
        if len(bad) != len(ids):
            raise UsageError(
                f"CLEAN is {len(ids)} tokens and `corrupt` {len(bad)}: they must be the same length "
                f"(they first differ at position {_first_difference(ids, bad)})",
                hint="llmscope tokenize shows both; change words for words of as many tokens")
        corrupt_embeds = _embeds(lm, parts, bad)
    else:
        corrupt_embeds = _noised(lm, parts, ids, enc.offsets, enc.text, noise, seed)
    clean_embeds = _embeds(lm, parts, ids)
    with torch.no_grad():
        clean_logits = lm.model(inputs_embeds=clean_embeds, use_cache=False).logits[0, -1].double()
        corrupt_logits = lm.model(inputs_embeds=corrupt_embeds, use_cache=False).logits[0, -1].double()
    target_id = _one_token(lm, target, "target") if target is not None else int(clean_logits.argmax())
    versus_id = _one_token(lm, versus, "versus") if versus is not None else int(corrupt_logits.argmax())
    if versus_id == target_id:
        if versus is not None:
            raise UsageError(f"`versus={versus!r}` is the same token as the target")
        versus_id = None
    runner = _Runner(lm, parts, corrupt_embeds, target_id, versus_id)
    clean_m = float(runner.metric(clean_logits[None, None, :])[0])
    corrupt_m = float(runner.metric(corrupt_logits[None, None, :])[0])
    values = clean_values(lm, parts, clean_embeds, site)
    resid = values if site == "resid" else clean_values(lm, parts, clean_embeds, "resid")
    raw, checks = patch_batches(lm, parts, runner, values, site, len(ids), resid)
    span = clean_m - corrupt_m
    if abs(span) < 1e-9:
        warnings.append("the clean and corrupt runs give the same metric: nothing to restore, the grid is empty")
    grid = [[None if abs(span) < 1e-9 else (v - corrupt_m) / span for v in row] for row in raw]
    return PatchResult(
        model=lm.source.display_name, clean_prompt=clean, corrupt_prompt=corrupt, noise=noise, site=site,
        metric="logit_diff" if versus_id is not None else "logprob", target=token_text(lm.tokenizer, target_id),
        target_id=target_id, versus=None if versus_id is None else token_text(lm.tokenizer, versus_id),
        versus_id=versus_id, clean=clean_m, corrupt=corrupt_m, tokens=[token_text(lm.tokenizer, t) for t in ids],
        grid=grid, raw=raw, check={"all": abs(checks["all"] - clean_m), "none": abs(checks["none"] - corrupt_m)},
        seed=seed, dtype=lm.dtype, warnings=warnings)
