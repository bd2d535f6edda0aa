"""The memory a forward pass will take, estimated before it starts, and the refusal when it cannot fit.

Weights are checked when they load (``memory_guard``); this checks the work on top of them, from the
config and the prompt length alone: attention weights (``layers x heads x tokens x tokens``), hidden
states and logit-lens logits, beams x vocabulary scores, the KV cache of every row of a batch (with
``cache.kv_cache_estimate``, the numbers ``llmscope memory`` shows), and results held as Python numbers.
A command whose estimate exceeds the memory available is refused with the estimate and what to change,
instead of being killed by the kernel half-way. ``LLMSCOPE_SKIP_MEMORY_CHECK=1`` turns the check off;
``LLMSCOPE_MAX_WORK_BYTES`` (a size, e.g. ``2GiB``) caps the budget below what the machine has.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from llmscope.errors import ResourceError, UsageError
from llmscope.units import fmt_bytes

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig

BUDGET_ENV = "LLMSCOPE_MAX_WORK_BYTES"
FLOAT32 = 4
PY_FLOAT = 32  # a float in a Python list: the 24-byte object and the 8-byte pointer to it
PY_CELL = 400  # one logit-lens prediction kept as a dataclass with its token text
LENS_CHUNK_BYTES = 64 * 2**20  # the lens runs over positions in chunks of at most this many logits bytes
SHARE = 0.9  # of the available memory the work may take: the rest is for Python, the OS and rounding


@dataclasses.dataclass(frozen=True)
class WorkEstimate:
    """What one command will allocate besides the weights, part by part (label -> bytes)."""

    what: str  # "attention on 20,000 tokens"
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self, count: int = 2) -> str:
        """The total and its largest parts: 'about 128 GiB (kept weights ...: 115 GiB, ...)'."""
        biggest = sorted(self.parts.items(), key=lambda item: -item[1])[:count]
        shown = ", ".join(f"{label} {fmt_bytes(size)}" for label, size in biggest if size)
        return f"about {fmt_bytes(self.total)}" + (f" ({shown})" if shown else "")


# --------------------------------------------------------------------------------------------
# Reading the config


def _text(config: Any) -> Any:
    from llmscope.config.values import text_config

    return text_config(config)


def _int(config: Any, *names: str, default: int = 0) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def element_bytes(dtype: str | None) -> int:
    """Bytes per element of a dtype name ('bfloat16', 'torch.float16'); float32's 4 when unknown."""
    from llmscope.config.parameters import DTYPE_BYTES

    name = str(dtype or "").replace("torch.", "")
    return int(DTYPE_BYTES.get(name, FLOAT32))


def _kv_cache(config: PretrainedConfig, tokens: int, batch: int, dtype: str | None) -> int:
    """The DynamicCache of ``batch`` rows of ``tokens`` tokens (0 when the config cannot say)."""
    from llmscope.config.kv_cache import kv_cache_estimate
    from llmscope.config.parameters import DTYPE_BYTES

    name = str(dtype or "").replace("torch.", "")
    try:
        return kv_cache_estimate(config, context=max(tokens, 1), batch=max(batch, 1),
                                 dtype=name if name in DTYPE_BYTES else "float32").bytes
    except Exception:  # noqa: BLE001 - an estimate: a config the cache cannot lay out counts nothing here
        return 0


def shape(config: PretrainedConfig) -> tuple[int, int, int, int]:
    """(layers, attention heads, hidden size, vocabulary size) of the text model."""
    text = _text(config)
    layers = _int(text, "num_hidden_layers", "n_layer", default=1)
    heads = _int(text, "num_attention_heads", "n_head", default=1)
    hidden = _int(text, "hidden_size", "n_embd", "d_model", default=1)
    vocab = _int(text, "vocab_size", default=1)
    return layers, heads, hidden, vocab


# --------------------------------------------------------------------------------------------
# Per command


def attention_work(config: PretrainedConfig, tokens: int, *, dtype: str | None, kept_layers: int,
                   all_layers: bool = False, all_logits: bool = False) -> WorkEstimate:
    """``attention``: eager attention materialises one layer's (heads, tokens, tokens) scores at a
    time; ``kept_layers`` of them are kept (1 with a hook on the shown layer); the shown matrix and,
    with ``all_layers``, every head of every layer become Python numbers."""
    layers, heads, _, vocab = shape(config)
    square = heads * tokens * tokens
    element = element_bytes(dtype)
    parts = {
        "eager scores of one layer": square * (FLOAT32 + element),  # softmax in float32, cast back
        f"kept weights of {kept_layers} layer{'s' if kept_layers != 1 else ''}": kept_layers * square * element,
        "the shown matrix as numbers": tokens * tokens * (FLOAT32 + PY_FLOAT),
        "logits": (tokens if all_logits else 1) * vocab * FLOAT32,
    }
    if all_layers:
        parts[f"every head of {layers} layers as numbers"] = layers * square * PY_FLOAT
    return WorkEstimate(f"attention on {tokens:,} tokens", parts)


def layers_work(config: PretrainedConfig, tokens: int, *, dtype: str | None, all_tokens: bool, top: int,
                eager: bool, all_logits: bool) -> WorkEstimate:
    """``layers``: every hidden state, the forward's logits, the KV cache; with ``all_tokens`` the
    lens in chunks of positions and the grid of predictions as Python objects."""
    layers, heads, hidden, vocab = shape(config)
    element = element_bytes(dtype)
    parts = {
        f"hidden states of {layers + 1} layers": (layers + 1) * tokens * hidden * element,
        "logits": (tokens if all_logits else 1) * vocab * FLOAT32,
        "KV cache": _kv_cache(config, tokens, 1, dtype),
    }
    if eager:
        parts["eager scores of one layer"] = heads * tokens * tokens * (FLOAT32 + element)
    if all_tokens:
        chunk = lens_chunk(vocab, tokens)
        parts["lens logits of one chunk"] = 3 * chunk * vocab * FLOAT32  # logits, softmax, top-k work
        parts[f"the lens grid of {layers + 1} x {tokens:,} cells"] = (layers + 1) * tokens * max(top, 1) * PY_CELL
    return WorkEstimate(f"layers on {tokens:,} tokens", parts)


def lens_chunk(vocab: int, tokens: int) -> int:
    """Positions per lens chunk: at most LENS_CHUNK_BYTES of float32 logits, at least one position."""
    return max(1, min(tokens, LENS_CHUNK_BYTES // max(vocab * FLOAT32, 1)))


def decode_work(config: PretrainedConfig, prompt_tokens: int, new_tokens: int, *, rows: int, beams: int,
                dtype: str | None) -> WorkEstimate:
    """``generate`` / ``compare``: the KV cache of every row (each beam is a row), the scores over the
    vocabulary per row (logits, processed scores, log-probabilities), and beam search's
    teacher-forced pass over prompt + output."""
    _, _, _, vocab = shape(config)
    total_rows = rows + beams
    length = prompt_tokens + new_tokens
    parts = {
        f"KV cache of {total_rows:,} row{'s' if total_rows != 1 else ''}": _kv_cache(config, length, total_rows, dtype),
        "scores over the vocabulary": 4 * total_rows * vocab * FLOAT32,
        "prompt logits": prompt_tokens * vocab * FLOAT32 if not rows and not beams else vocab * FLOAT32,
    }
    if beams:
        parts["beam search's candidates"] = 2 * beams * 2 * vocab * FLOAT32  # (beams x vocab) flattened, top-k
        parts["teacher-forced logits"] = length * vocab * FLOAT32
    return WorkEstimate(f"decoding {total_rows:,} row{'s' if total_rows != 1 else ''} of up to {length:,} tokens",
                        parts)


def embeddings_work(config: PretrainedConfig, word_tokens: list[int], *, vocab_rows: int, neighbors: int,
                    layer: bool, analogy: bool, context_tokens: list[int], dtype: str | None) -> WorkEstimate:
    """``embeddings``: the words' vectors and their words x words cosines as Python numbers; the scores of
    every vocabulary row against every word (neighbours) or the analogy; with ``layer``, each word's run
    alone (one at a time); with contexts, each sentence's run and every layer's sentences x sentences cosines."""
    layers, _, hidden, _ = shape(config)
    words, sentences = len(word_tokens), len(context_tokens)
    element = element_bytes(dtype)
    parts = {
        f"cosines of {words:,} x {words:,} words": words * words * (8 + PY_FLOAT),
        "the word vectors": words * hidden * 8,
    }
    if neighbors and not layer:
        parts[f"scores of {vocab_rows:,} rows x {words:,} words"] = vocab_rows * words * FLOAT32 + vocab_rows * FLOAT32
    if analogy:
        parts["the analogy's scores"] = 2 * vocab_rows * FLOAT32
    if layer and words:
        parts["hidden states of one word's run"] = (layers + 1) * max(word_tokens) * hidden * (element + 8)
    if sentences:
        parts["hidden states of one sentence's run"] = (layers + 1) * max(context_tokens) * hidden * (element + 8)
        parts[f"the word's means in {sentences:,} sentences"] = 3 * sentences * (layers + 1) * hidden * 8
        parts[f"cosines of {sentences:,} x {sentences:,} sentences at {layers + 1} depths"] = (
            (layers + 1) * sentences * sentences * (8 + PY_FLOAT))
    what = f"embeddings of {words:,} word{'s' if words != 1 else ''}"
    if sentences:
        what += f" and {sentences:,} sentences"
    return WorkEstimate(what, parts)


def attribution_row_bytes(config: PretrainedConfig, tokens: int, kept: int, *, dtype: str | None) -> int:
    """One row of a forward and backward pass over TOKENS tokens, logits at KEPT positions (``why``): what
    autograd keeps per layer (the hidden states a block saves, its MLP's hidden units, one layer's
    attention scores), and the logits, their log-softmax and its gradient."""
    layers, heads, hidden, vocab = shape(config)
    intermediate = _int(_text(config), "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    element = element_bytes(dtype)
    per_layer = tokens * (20 * hidden + 4 * intermediate) * element + 2 * heads * tokens * tokens * FLOAT32
    return layers * per_layer + 3 * max(kept, 1) * vocab * FLOAT32


def attribution_work(config: PretrainedConfig, tokens: int, kept: int, rows: int, *, dtype: str | None,
                     method: str) -> WorkEstimate:
    """``why``: ROWS rows at once of the forward and backward pass (integrated gradients' path points,
    grad x input's one row) or of the forward pass alone (occlusion's replaced copies)."""
    row = attribution_row_bytes(config, tokens, kept, dtype=dtype)
    if method == "occlusion":
        row = row // 4  # nothing kept for a backward pass: one layer's work at a time, and the logits
    return WorkEstimate(f"{method} on {tokens:,} tokens, {rows:,} row{'s' if rows != 1 else ''} at once",
                        {f"activations of {rows:,} row{'s' if rows != 1 else ''}": rows * row})


def rows_that_fit(config: PretrainedConfig, tokens: int, kept: int, wanted: int, *, dtype: str | None,
                  method: str, device: str | None = "cpu", hints: list[str]) -> int:
    """How many of WANTED rows of attribution work run at once under the budget: at least one, or
    ResourceError (exit 1) when even one will not fit."""
    check_fits(attribution_work(config, tokens, kept, 1, dtype=dtype, method=method), device=device, hints=hints)
    if os.environ.get("LLMSCOPE_SKIP_MEMORY_CHECK"):
        return max(wanted, 1)
    one = max(attribution_work(config, tokens, kept, 1, dtype=dtype, method=method).total, 1)
    available, _ = budget(device)
    return max(1, min(wanted, int(SHARE * available // one)))


# --------------------------------------------------------------------------------------------
# The check


def budget(device: str | None = "cpu") -> tuple[int, str]:
    """Bytes the work may take, and where: the RAM available (GPU memory free, for a CUDA device),
    capped by LLMSCOPE_MAX_WORK_BYTES."""
    from llmscope.loading.ram_guard import available_ram

    where = "is available in RAM"
    if device and str(device).startswith("cuda"):
        import torch

        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        available, where = int(torch.cuda.mem_get_info(index)[0]), f"is free on {device}"
    else:
        available = available_ram()
    room = _address_space_left()
    if room is not None and room < available:  # ulimit -v: allocations past it fail however much RAM is free
        available, where = room, "is left under this process's address-space limit (ulimit -v)"
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        from llmscope.units import parse_size

        try:
            cap = int(value) if value.isdigit() else parse_size(value)
        except UsageError as exc:
            raise UsageError(f"{BUDGET_ENV}={value!r}: {exc.template}", hint=exc.hint_template) from None
        if cap < available:
            available, where = cap, f"is allowed by {BUDGET_ENV}"
    return available, where


def _address_space_left() -> int | None:
    """Bytes of address space left under RLIMIT_AS, or None without a limit (or off Linux)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as handle:
            used = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
        return max(limit - used, 0)
    except (ImportError, OSError, StopIteration, ValueError):
        return None


def check_fits(estimate: WorkEstimate, *, device: str | None = "cpu", hints: list[str]) -> None:
    """Raise ResourceError (exit 1) when ``estimate`` exceeds 90% of the budget, naming what to change."""
    if os.environ.get("LLMSCOPE_SKIP_MEMORY_CHECK"):
        return
    available, where = budget(device)
    if estimate.total <= SHARE * available:
        return
    raise ResourceError(
        f"{estimate.what} would need {estimate.describe()}, but only {fmt_bytes(available)} {where}",
        hint=("try " + ", or ".join(hints)) if hints else "use a machine with more memory",
    )
