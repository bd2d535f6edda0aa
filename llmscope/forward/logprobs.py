"""Each token's log-probability, rank and the model's top choice, from a model's logits.

``score_ids`` runs the windows ``scoring`` plans. Logits are never held for a long window: its last
hidden states go through the LM head and the model's logit scaling (both from the anatomy map) a
chunk of rows at a time (into one buffer), and each chunk is reduced at once to the numbers kept (the
target's log-probability, its rank, the top choice), so a 262k vocabulary costs ``rows x vocab``
floats, not ``window x vocab``. A short window (logits within 256 MiB) is one plain forward pass of
the model. On the CPU the reduction reads a few rows at a time, while they are in the cache; the
numbers are torch's own ``log_softmax``, which transformers' loss is made of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmscope.progress import reporter

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from llmscope.forward.anatomy import Anatomy
    from llmscope.loading.model import LoadedModel

CHUNK_FLOATS = 2**27  # logits held at once in the split path: 512 MiB of float32, whatever the vocabulary
FULL_LOGITS_FLOATS = 2**26  # a window whose logits fit in 256 MiB runs the whole model at once
BLOCK_FLOATS = 2**20  # logits reduced together on the CPU: 4 MiB, within the cache


def split_head(lm: LoadedModel, parts: Anatomy) -> tuple[Any, Any] | None:
    """(decoder, head) when the model is "decoder, then head, then its logit scaling" (the anatomy
    map's backbone, head and ``scale_logits``): its logits can then be made a few rows at a time.
    None when it has no such parts."""
    if not parts.backbone or parts.head is None:
        return None
    return parts.module(lm.model, parts.backbone), parts.module(lm.model, parts.head)


def _head_logits(head: Any, parts: Anatomy, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The head's logits of ``hidden`` (rows, hidden), scaled and soft-capped as the model's forward
    does it (``Anatomy.scale_logits``: Cohere's logit_scale, Granite's logits_scaling, Gemma's cap).
    A plain ``nn.Linear`` head writes into ``out`` (rows, vocab), made once: on the CPU, paging in a
    fresh chunk of logits for every window costs more than reducing it."""
    import torch

    if out is not None and type(head) is torch.nn.Linear and out.dtype == head.weight.dtype:
        out = out[: hidden.shape[0]]
        if head.bias is None:
            logits = torch.mm(hidden, head.weight.t(), out=out)
        else:
            logits = torch.addmm(head.bias, hidden, head.weight.t(), out=out)
    else:
        logits = head(hidden)
    # Scaled back into the same rows, a block at a time: the same operations in the head's dtype as
    # the model's forward, and no second chunk of logits in memory.
    block = max(1, BLOCK_FLOATS // max(1, logits.shape[-1]))
    for at in range(0, logits.shape[0], block):
        rows = logits[at : at + block]  # (block, vocab)
        scaled = parts.scale_logits(rows)
        if scaled is not rows:  # a model without logit scaling: nothing to write
            rows.copy_(scaled)
    return logits


def _logit_source(
    lm: LoadedModel, ids: list[int], window: int
) -> Callable[[torch.Tensor, int, int], Iterator[torch.Tensor]]:
    """A function (window ids, first row, end row) -> logits of those rows, a chunk at a time.

    Windows whose logits fit in FULL_LOGITS_FLOATS run the whole model (one forward pass, its own
    logits). Longer ones run the decoder, then the head a chunk of rows at a time into one buffer;
    that split is used only after checking, on the first tokens of the text, that it gives the
    model's own logits."""
    import torch

    from llmscope.forward.anatomy import anatomy

    found = anatomy(lm.model)
    unembedding = lm.model.get_submodule(found.unembedding) if found.unembedding is not None else None
    vocab = int(unembedding.weight.shape[0]) if hasattr(unembedding, "weight") else 1
    rows = max(1, CHUNK_FLOATS // vocab)
    parts = split_head(lm, found) if min(window, len(ids)) * vocab > FULL_LOGITS_FLOATS else None
    if parts is not None:
        decoder, head = parts
        probe = torch.tensor([ids[:4]], device=lm.device)  # (1, tokens)
        reference = lm.model(probe).logits[0].float()  # (tokens, vocab)
        own = _head_logits(head, found, decoder(input_ids=probe).last_hidden_state[0]).float()
        scale = max(1.0, float(reference.abs().max()))
        if own.shape != reference.shape or not torch.allclose(own, reference, rtol=0, atol=1e-4 * scale):
            parts = None
            reporter().notice("This model's logits are not its decoder then its LM head: each window runs "
                              "the whole model, with window x vocabulary logits in memory")
    buffer: list[torch.Tensor] = []  # (rows, vocab), made on first use

    def chunks(window_ids: torch.Tensor, first: int, end: int) -> Iterator[torch.Tensor]:
        if parts is not None:
            hidden = decoder(input_ids=window_ids).last_hidden_state[0, first:end]  # (rows, hidden)
            if not buffer:
                buffer.append(torch.empty(min(rows, window), vocab, dtype=hidden.dtype, device=hidden.device))
            for at in range(0, end - first, rows):
                yield _head_logits(head, found, hidden[at : at + rows], buffer[0])  # (rows, vocab)
        else:
            yield lm.model(window_ids).logits[0, first:end]  # (rows, vocab)

    return chunks


def _reduce(logits: torch.Tensor, targets: torch.Tensor) -> list[tuple[float, int, int, float]]:
    """(logprob, rank, top id, top prob) of each row of ``logits`` (rows, vocab) for its target.

    On the CPU the rows are reduced a few at a time (BLOCK_FLOATS), so that max, rank and
    log-softmax read them from the cache instead of memory; the numbers are the same either way."""
    import torch

    block = max(1, BLOCK_FLOATS // logits.shape[1]) if logits.device.type == "cpu" else logits.shape[0]
    out: list[tuple[float, int, int, float]] = []
    for at in range(0, logits.shape[0], block):
        rows = logits[at : at + block].float()  # (block, vocab)
        target = targets[at : at + block].to(rows.device)[:, None]  # (block, 1)
        best_id = rows.argmax(dim=-1, keepdim=True)  # (block, 1)
        rank = (rows > rows.gather(1, target)).sum(dim=-1, dtype=torch.int32) + 1
        # torch's own log_softmax: the numbers transformers' loss is made of.
        logprobs = torch.log_softmax(rows, dim=-1)  # (block, vocab)
        logprob = logprobs.gather(1, target)[:, 0]
        top_prob = torch.exp(logprobs.gather(1, best_id)[:, 0])
        out.extend(zip(logprob.tolist(), rank.tolist(), best_id[:, 0].tolist(), top_prob.tolist()))
    return out


def score_ids(
    lm: LoadedModel, ids: list[int], plan: list[tuple[int, int, int]], window: int
) -> list[tuple[float, int, int, float]]:
    """(logprob, rank, top id, top prob) for every token after the first, in order."""
    import torch

    out: list[tuple[float, int, int, float]] = []
    with torch.inference_mode():
        chunks = _logit_source(lm, ids, window)
        with reporter().progress("Scoring windows", total=len(plan)) as bar:
            for begin, end, first in plan:
                window_ids = torch.tensor([ids[begin:end]], device=lm.device)  # (1, tokens)
                # Row r of the window predicts the token at begin + r + 1.
                targets = torch.tensor(ids[first:end])
                at = 0
                for logits in chunks(window_ids, first - 1 - begin, end - 1 - begin):  # (rows, vocab)
                    out.extend(_reduce(logits, targets[at : at + logits.shape[0]]))
                    at += logits.shape[0]
                bar.advance()
    return out
