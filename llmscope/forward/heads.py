"""``llmscope heads``: every head of every layer scored for the patterns interpretability work names.

One forward pass with eager attention; each layer's (heads, query, key) weights are reduced to the scores
as the layer runs (``hooks.watch``), so memory holds one layer's weights. With T tokens, a head's weights
A, query i and key j, and means over the queries where a pattern is defined (i >= 1):

- ``previous_token``: mean of A[i, i-1];
- ``first_token`` (the attention sink): mean of A[i, 0];
- ``self``: mean of A[i, i];
- ``duplicate_token``: over queries whose token occurred earlier, mean of the sum of A[i, j] over the
  earlier j holding the same token;
- ``induction``: over queries whose token occurred earlier at some j' with j' + 1 < i, mean of the sum of
  A[i, j' + 1] over those j' (the token that followed the earlier occurrence).

Without a prompt the input is the standard induction probe: the tokenizer's BOS (if it adds one), then
``PROBE_LENGTH`` ordinary token ids drawn with a fixed seed, then the same ids again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

PATTERNS = ("previous_token", "first_token", "self", "duplicate_token", "induction")
PROBE_LENGTH = 50


@dataclasses.dataclass(frozen=True)
class HeadScores:
    layer: int
    head: int
    kv_head: int
    previous_token: float
    first_token: float
    self: float
    duplicate_token: float | None  # None: no query's token occurred earlier
    induction: float | None  # None: no query's token occurred earlier with a token after it


@dataclasses.dataclass(frozen=True)
class HeadLink:
    """One head's weight from the query token to the key token, and its row's share on the first token."""

    layer: int
    head: int
    weight: float
    first_token: float


@dataclasses.dataclass(frozen=True)
class HeadsReport:
    model: str
    tokens: list[int]  # the input's ids
    token_texts: list[str]
    probe: bool  # the induction probe, not a prompt
    seed: int | None
    num_layers: int
    num_heads: int
    num_key_value_heads: int
    heads: list[HeadScores]
    query: dict[str, Any] | None = None  # with --query/--key: {"position", "token"}
    key: dict[str, Any] | None = None
    ranking: list[HeadLink] | None = None  # strongest first
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "tokens": self.tokens, "token_texts": self.token_texts,
                               "probe": self.probe, "seed": self.seed, "heads": self.heads, "warnings": self.warnings}
        if self.ranking is not None:
            out.update(query=self.query, key=self.key, ranking=self.ranking)
        return out

    def top(self, pattern: str, n: int) -> list[HeadScores]:
        """The N heads scoring highest on PATTERN (those where it is defined)."""
        scored = [h for h in self.heads if getattr(h, pattern) is not None]
        return sorted(scored, key=lambda h: -getattr(h, pattern))[:n]


# --------------------------------------------------------------------------------------------
# The definitions, on one layer's weights


def pattern_masks(ids: list[int]) -> dict[str, torch.Tensor]:
    """(T, T) float masks of the keys each pattern sums per query; queries i >= 1 only."""
    import torch

    t = torch.tensor(ids)
    n = len(ids)
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    earlier_same = (t[:, None] == t[None, :]) & (j < i)  # duplicate: the same token at an earlier key
    after = torch.zeros(n, n, dtype=torch.bool)  # induction: the key right after an earlier occurrence
    after[:, 1:] = earlier_same[:, :-1] & (j[:, 1:] < i)
    queries = (i >= 1).expand(n, n)
    return {
        "previous_token": ((j == i - 1) & queries).double(),
        "first_token": ((j == 0) & queries).double(),
        "self": ((j == i) & queries).double(),
        "duplicate_token": (earlier_same & queries).double(),
        "induction": (after & queries).double(),
    }


def layer_scores(weights: torch.Tensor, masks: dict[str, torch.Tensor]) -> dict[str, list[float | None]]:
    """weights (heads, T, T) -> pattern -> one score per head (None where no query defines it)."""
    w = weights.double().cpu()
    out: dict[str, list[float | None]] = {}
    for name, mask in masks.items():
        rows = mask.sum(dim=-1) > 0  # (T,): the queries where the pattern is defined
        if not bool(rows.any()):
            out[name] = [None] * w.shape[0]
            continue
        per_query = (w * mask).sum(dim=-1)  # (heads, T)
        out[name] = per_query[:, rows].mean(dim=-1).tolist()
    return out


# --------------------------------------------------------------------------------------------
# The input


def induction_probe(tokenizer: Any, seed: int, length: int = PROBE_LENGTH) -> list[int]:
    """BOS (if the tokenizer adds one), then LENGTH ordinary ids drawn with SEED, then the same again."""
    import torch

    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ordinary = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    generator = torch.Generator().manual_seed(seed)
    drawn = ordinary[torch.randint(len(ordinary), (length,), generator=generator)].tolist()
    start = tokenizer("x")["input_ids"][:1]
    bos = start if tokenizer.bos_token_id is not None and start == [tokenizer.bos_token_id] else []
    return bos + drawn + drawn


# --------------------------------------------------------------------------------------------
# The command


def check_options(prompt: str | None, query: str | None, key: str | None) -> None:
    """What needs no model: a prompt that is not empty; --query and --key go together, and need a prompt."""
    from llmscope.text.prompts import check_prompt_options

    if prompt is not None:
        check_prompt_options(prompt, chat=False, system=None)
    if (query is None) != (key is None):
        raise UsageError("`query` and `key` go together: the weight one token gives another", hint="give both")
    if query is not None and prompt is None:
        raise UsageError("`query` and `key` need a PROMPT to find them in")


def heads(prompt: str | None = None, *, model: loading.ModelLike = None, query: str | None = None,
          key: str | None = None, seed: int = 0) -> HeadsReport:
    """Score every head of every layer on PROMPT (None: the induction probe); with QUERY and KEY (words of the
    prompt or positions) also rank every head by the weight the query gives the key."""
    import torch

    from llmscope.forward.attention import attention_sites, check_attention_work, eager_attention, eager_model, find_query
    from llmscope.forward.attention import token_pieces
    from llmscope.forward.attention_kind import attention_kind, check_indices
    from llmscope.forward.hooks import watch
    from llmscope.text.prompts import encode_for

    check_options(prompt, query, key)
    lm = eager_model(model, 0, None)
    num_layers, num_heads = check_indices(lm.config, 0, None)
    kind = attention_kind(lm.config, causal=not lm.masked)
    warnings: list[str] = []
    offsets = None
    if prompt is None:
        ids = induction_probe(lm.tokenizer, seed)
    else:
        encoded = encode_for(lm, prompt)
        ids, offsets, warnings = encoded.ids, encoded.offsets, list(encoded.warnings)
    pieces = token_pieces(lm.tokenizer, ids)
    q = find_query(query, pieces, offsets, prompt) if query is not None else None
    k = find_query(key, pieces, offsets, prompt) if key is not None else None
    if q is not None and kind.causal and k > q:
        raise UsageError(f"`key={key!r}` comes after `query={query!r}`: a causal model's token sees only earlier ones")
    modules = attention_sites(lm.model, num_layers)
    if modules is None:
        raise UsageError(f"{lm.source.display_name}: not every layer has softmax attention to score",
                         hint="attention --walk --layer N walks one layer that has")
    check_attention_work(lm, len(ids), kept=1, all_layers=False)
    masks = pattern_masks(ids)
    scores: dict[int, dict[str, list[float | None]]] = {}
    links: dict[int, tuple[list[float], list[float]]] = {}

    def seen(layer: int, _hidden: Any, output: Any) -> None:
        weights = output[1][0]  # (heads, T, T), this layer only
        scores[layer] = layer_scores(weights, masks)
        if q is not None:
            links[layer] = (weights[:, q, k].double().tolist(), weights[:, q, 0].double().tolist())

    input_ids = torch.tensor([ids], device=lm.device)
    with watch(dict(enumerate(modules)), seen), eager_attention(lm), torch.no_grad():
        lm.model(input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False)
    groups = num_heads // kind.num_key_value_heads
    rows = [HeadScores(layer=li, head=h, kv_head=h // groups, **{p: scores[li][p][h] for p in PATTERNS})
            for li in range(num_layers) for h in range(num_heads)]
    ranking = None
    if q is not None:
        ranking = sorted((HeadLink(li, h, links[li][0][h], links[li][1][h]) for li in range(num_layers)
                          for h in range(num_heads)), key=lambda r: -r.weight)
    return HeadsReport(
        model=lm.source.display_name, tokens=ids, token_texts=pieces, probe=prompt is None,
        seed=seed if prompt is None else None, num_layers=num_layers, num_heads=num_heads,
        num_key_value_heads=kind.num_key_value_heads, heads=rows,
        query={"position": q, "token": pieces[q]} if q is not None else None,
        key={"position": k, "token": pieces[k]} if k is not None else None, ranking=ranking, warnings=warnings,
    )


# The name in ``llmscope``'s lazy API.
head_scores = heads
