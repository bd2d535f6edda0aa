"""Will a model fit: weights, KV cache and transient memory against a budget, from the config alone.

Like ``inspect``, the model is built on the meta device (no weights, no memory), parameters are
counted exactly (tied weights once, every expert of a MoE model resident), and the KV cache comes
from the one estimate that ``inspect`` shows too (:func:`llmscope.architecture.kv_cache_estimate`),
which asks transformers' ``DynamicCache(config=...)`` which layers slide and over what window.
With several devices, accelerate's ``infer_auto_device_map`` plans where each layer goes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.architecture import (
    DTYPE_BYTES,
    GgufInfo,
    KVCacheEstimate,
    _gguf_info,
    _get,
    _mixture_of_experts,
    count_parameters,
    kv_cache_estimate,
)
from llmscope.errors import UsageError
from llmscope.units import parse_size

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

MEMORY_DTYPES = ("float32", "bfloat16", "float16")
UNLIMITED_CONTEXT = 1 << 30  # the search ceiling when a model states no maximum (or --allow-longer)


# --------------------------------------------------------------------------------------------
# Sizes and budgets (parse_size lives in llmscope.units, shared with the render layer)

MAX_GPUS = 4096  # far beyond any machine; a bigger count would only build a huge list


def parse_gpus(text: str | list[int | str]) -> list[int]:
    """'2x80GiB' -> two budgets of 80 GiB; '24GiB,48GiB' -> one per GPU; a list passes through."""
    if isinstance(text, (list, tuple)):
        sizes = [parse_size(s) for s in text]
    else:
        match = re.fullmatch(r"\s*([0-9]+)\s*[xX*]\s*(.+)", text)
        if match:
            count = int(match.group(1))
            if not 0 < count <= MAX_GPUS:
                raise UsageError(f"--gpus {text}: the number of GPUs must be 1 to {MAX_GPUS}")
            sizes = [parse_size(match.group(2))] * count
        else:
            sizes = [parse_size(s) for s in text.split(",") if s.strip()]
    if not sizes:
        raise UsageError(f"cannot read --gpus {text!r}", hint="write it like 2x80GiB or 24GiB,48GiB")
    if len(sizes) > MAX_GPUS:
        raise UsageError(f"--gpus: {len(sizes)} GPUs, more than {MAX_GPUS}")
    return sizes


@dataclasses.dataclass(frozen=True)
class DeviceBudget:
    device: str  # 'memory', 'cuda:0', 'cpu'
    bytes: int
    source: str  # 'given', or where this machine's number came from


def machine_budget() -> list[DeviceBudget]:
    """This machine: free memory of each CUDA GPU (plus available RAM to spill into), else available RAM."""
    import torch

    gpus: list[DeviceBudget] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, _ = torch.cuda.mem_get_info(i)
            gpus.append(DeviceBudget(f"cuda:{i}", int(free), "free GPU memory"))
    ram = DeviceBudget("cpu", loading.available_ram(), "available RAM")
    return [*gpus, ram]


# --------------------------------------------------------------------------------------------
# Result types


@dataclasses.dataclass(frozen=True)
class ParameterSummary:
    """Exact counts, tied weights once; a MoE model holds ``total`` although only ``active`` run per token."""

    total: int
    active: int
    num_experts: int | None = None
    num_experts_per_tok: int | None = None


@dataclasses.dataclass(frozen=True)
class WeightsMemory:
    dtype: str
    bytes: int  # exact parameters x dtype size
    file_bytes: int | None = None  # GGUF: the file as stored
    bits_per_weight: float | None = None  # GGUF: of its quantization mix
    gguf: GgufInfo | None = None  # GGUF: per tensor type

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "bytes": self.bytes}
        if self.gguf is not None:
            out["file_bytes"] = self.file_bytes
            out["bits_per_weight"] = self.bits_per_weight
            out["file_type"] = self.gguf.file_type
            out["types"] = [
                {"type": t.type, "tensors": t.tensors, "elements": t.elements, "bytes": t.bytes,
                 "bits_per_weight": t.bits_per_weight}
                for t in self.gguf.types
            ]
        return out


@dataclasses.dataclass(frozen=True)
class DevicePlacement:
    """What one device holds in accelerate's plan."""

    device: str  # 'cuda:0', 'cpu', 'disk'
    bytes: int  # weights + KV cache + transient held there
    layers: list[int]  # decoder layer indices
    modules: list[str]  # accelerate's device_map entries
    weights_bytes: int
    kv_cache_bytes: int
    transient_bytes: int
    budget: int | None  # None for disk


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """``llmscope memory``: what a model needs at a context and batch, and whether the budget holds it."""

    model: str  # the display name, as in every result
    source: str  # the same name: the key memory's --json had before "model"
    model_type: str
    architecture: str
    kind: str  # "causal" or "masked"
    num_hidden_layers: int
    max_position_embeddings: int | None
    parameters: ParameterSummary
    weights: WeightsMemory
    kv_cache: KVCacheEstimate | None  # None for encoder-only models
    transient_bytes: int
    transient: dict[str, int]  # its parts: logits, mlp
    needed_bytes: int  # weights + KV cache + transient
    budget: list[DeviceBudget]
    budget_from_machine: bool
    fits: bool
    headroom_bytes: int
    max_context: int | None
    placement: list[DevicePlacement] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "source": self.source,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "transient_bytes": self.transient_bytes,
            "transient": self.transient,
            "needed_bytes": self.needed_bytes,
            "budget": self.budget,
            "fits": self.fits,
            "headroom_bytes": self.headroom_bytes,
            "max_context": self.max_context,
            "max_position_embeddings": self.max_position_embeddings,
            "placement": self.placement,
        }


# --------------------------------------------------------------------------------------------
# The public function


def memory_report(
    model: str | loading.LoadedModel | None = None,
    *,
    context: int | None = None,
    batch: int = 1,
    dtype: str = "bfloat16",
    kv_dtype: str | None = None,
    memory: str | int | None = None,
    gpus: str | list[int | str] | None = None,
    cpu: str | int | None = None,
    allow_longer: bool = False,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> MemoryReport:
    """What MODEL needs at ``context`` tokens x ``batch`` sequences, and whether it fits the budget.

    ``memory`` is one device's budget ('24GiB'); ``gpus`` several ('2x80GiB'), with ``cpu`` RAM to
    spill into. Without either, the budget is this machine's GPUs, else its available RAM.
    """
    # Values first: nothing is read before they are known to be good.
    if context is not None and context <= 0:
        raise UsageError(f"--context {context}: must be at least 1 token")
    if batch <= 0:
        raise UsageError(f"--batch {batch}: must be at least 1 sequence")
    if memory is not None and gpus is not None:
        raise UsageError("--memory and --gpus both given", hint="use --memory for one device, --gpus for several")
    dtype = _memory_dtype(dtype, "--dtype")
    kv_dtype = _memory_dtype(kv_dtype, "--kv-dtype") if kv_dtype is not None else None
    budget: list[DeviceBudget] | None = None
    if memory is not None:
        budget = [DeviceBudget("memory", parse_size(memory), "given")]
    elif gpus is not None:
        budget = [DeviceBudget(f"cuda:{i}", size, "given") for i, size in enumerate(parse_gpus(gpus))]
    if cpu is not None:
        budget = [*(budget or []), DeviceBudget("cpu", parse_size(cpu), "given")]

    if isinstance(model, loading.LoadedModel):
        source = model.source
        config = model.config
    else:
        from llmscope.resolve import resolve

        source = resolve(model, revision=revision, gguf_file=gguf_file)
        config = loading.load_config(source, trust_remote_code=trust_remote_code)
    if dtype == "auto":
        dtype = _auto_dtype(config)
    kv_dtype = dtype if kv_dtype in (None, "auto") else kv_dtype
    max_positions = _max_positions(config)
    if context is None:
        context = max_positions or 2048
    elif max_positions and context > max_positions and not allow_longer:
        raise UsageError(
            f"--context {context:,} is beyond this model's maximum of {max_positions:,} tokens",
            hint="pass --allow-longer to size it anyway",
        )

    with loading.translate_errors(source, what="config"):
        meta = loading.build_meta_model(config, trust_remote_code=trust_remote_code)
    gguf = loading.gguf_summary(source)
    return _report(
        config, meta, source=source.display_name, context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype,
        budget=budget, allow_longer=allow_longer, gguf=gguf,
    )


def _memory_dtype(value: str, option: str) -> str:
    name = loading.validate_dtype(value)  # aliases: bf16, fp16, fp32
    if name != "auto" and name not in MEMORY_DTYPES:  # pragma: no cover - validate_dtype knows the same
        raise UsageError(f"{option} {value}: unknown dtype", hint="use float32, bfloat16 or float16")
    return name


def _auto_dtype(config: PretrainedConfig) -> str:
    stored = loading.checkpoint_dtype(config)
    return stored if stored in MEMORY_DTYPES else "float32"


def _max_positions(config: PretrainedConfig) -> int | None:
    text = config.get_text_config(decoder=True)
    value = getattr(text, "max_position_embeddings", None) or getattr(config, "max_position_embeddings", None)
    return int(value) if value else None


# --------------------------------------------------------------------------------------------
# Assembling the report


def _report(
    config: PretrainedConfig,
    meta: nn.Module,
    *,
    source: str,
    context: int,
    batch: int,
    dtype: str,
    kv_dtype: str,
    budget: list[DeviceBudget] | None,
    allow_longer: bool,
    gguf: dict[str, Any] | None,
) -> MemoryReport:
    masked = loading.is_masked_lm(config)
    moe = _mixture_of_experts(config, meta)
    counts = count_parameters(meta, moe)
    parameters = ParameterSummary(
        total=counts.total,
        active=counts.active,
        num_experts=moe.num_experts if moe else None,
        num_experts_per_tok=moe.num_experts_per_tok if moe else None,
    )
    gguf_info = _gguf_info(gguf) if gguf else None
    weights = WeightsMemory(
        dtype=dtype,
        bytes=int(counts.total * DTYPE_BYTES[dtype]),
        file_bytes=gguf_info.file_bytes if gguf_info else None,
        bits_per_weight=gguf_info.bits_per_weight if gguf_info else None,
        gguf=gguf_info,
    )
    kv = None if masked else kv_cache_estimate(config, context=context, batch=batch, dtype=kv_dtype)
    transient = transient_estimate(config, context=context, batch=batch, dtype=dtype)
    needed = weights.bytes + (kv.bytes if kv else 0) + sum(transient.values())

    from_machine = budget is None
    if budget is None:
        budget = machine_budget()
    total_budget = sum(b.bytes for b in budget)

    placement = None
    if len(budget) > 1:
        placement = plan_placement(meta, config, budget, dtype=dtype, kv=kv, transient=sum(transient.values()))
        fits = _plan_fits(placement)
    else:
        fits = needed <= total_budget

    max_positions = _max_positions(config)
    ceiling = UNLIMITED_CONTEXT if allow_longer or not max_positions else max_positions
    ceiling = max(ceiling, context) if allow_longer else ceiling

    def kv_at(tokens: int) -> KVCacheEstimate | None:
        return None if masked else kv_cache_estimate(config, context=tokens, batch=batch, dtype=kv_dtype)

    def transient_at(tokens: int) -> int:
        return sum(transient_estimate(config, context=tokens, batch=batch, dtype=dtype).values())

    def fits_at(tokens: int) -> bool:
        kv_tokens = kv_at(tokens)
        if len(budget) > 1:  # planned again at each length: each device holds its own layers' cache
            plan = plan_placement(meta, config, budget, dtype=dtype, kv=kv_tokens, transient=transient_at(tokens))
            return _plan_fits(plan)
        return weights.bytes + (kv_tokens.bytes if kv_tokens else 0) + transient_at(tokens) <= total_budget

    max_context = longest_context(fits_at, ceiling)
    return MemoryReport(
        model=source,
        source=source,
        model_type=config.model_type,
        architecture=type(meta).__name__,
        kind="masked" if masked else "causal",
        num_hidden_layers=int(_get(config.get_text_config(decoder=True), "num_hidden_layers")),
        max_position_embeddings=max_positions,
        parameters=parameters,
        weights=weights,
        kv_cache=kv,
        transient_bytes=sum(transient.values()),
        transient=transient,
        needed_bytes=needed,
        budget=budget,
        budget_from_machine=from_machine,
        fits=fits,
        headroom_bytes=total_budget - needed,
        max_context=max_context,
        placement=placement,
    )


def transient_estimate(config: PretrainedConfig, *, context: int, batch: int, dtype: str) -> dict[str, int]:
    """The largest short-lived tensors of one forward pass over ``context`` tokens (an estimate).

    ``logits``: (batch, tokens, vocab) in float32. ``mlp``: one layer's feed-forward intermediate,
    (batch, tokens, intermediate_size) twice (gate and up, or before and after the activation).
    Attention scores are not counted: SDPA and flash attention do not hold them whole.
    """
    text = config.get_text_config(decoder=True)
    vocab = int(_get(text, "vocab_size"))
    hidden = int(_get(text, "hidden_size"))
    intermediate = None
    for name in ("intermediate_size", "n_inner", "ffn_dim"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            intermediate = value
            break
    intermediate = intermediate or 4 * hidden
    logits = batch * context * vocab * 4  # (batch, tokens, vocab) float32
    mlp = int(2 * batch * context * intermediate * DTYPE_BYTES[dtype])  # 2 x (batch, tokens, intermediate)
    return {"logits": logits, "mlp": mlp}


def _plan_fits(placement: list[DevicePlacement]) -> bool:
    """Nothing offloaded to disk, and every device inside its budget."""
    return all(p.device != "disk" and p.budget is not None and p.bytes <= p.budget for p in placement)


def longest_context(fits_at: Callable[[int], bool], ceiling: int) -> int:
    """The most tokens that fit (0 if not even one), by bisection up to ``ceiling``."""
    if not fits_at(1):
        return 0
    if fits_at(ceiling):
        return ceiling
    low, high = 1, ceiling  # low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        if fits_at(mid):
            low = mid
        else:
            high = mid
    return low


# --------------------------------------------------------------------------------------------
# Placement


def decoder_layers_prefix(meta: nn.Module, num_layers: int) -> str | None:
    """The name of the ModuleList that holds the decoder (or encoder) blocks: 'model.layers'."""
    from torch import nn

    no_split = set(getattr(meta, "_no_split_modules", None) or [])
    best = None
    for name, module in meta.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and len(module):
            if type(module[0]).__name__ in no_split:
                return name
            best = best or name
    return best


def _device_of(name: str, device_map: dict[str, Any]) -> Any:
    """The device of a module or parameter name: its longest prefix in the device map."""
    best, best_len = None, -1
    for key, device in device_map.items():
        if (key == "" or name == key or name.startswith(key + ".")) and len(key) > best_len:
            best, best_len = device, len(key)
    return best


def plan_placement(
    meta: nn.Module,
    config: PretrainedConfig,
    budget: list[DeviceBudget],
    *,
    dtype: str,
    kv: KVCacheEstimate | None,
    transient: int,
) -> list[DevicePlacement]:
    """accelerate's ``infer_auto_device_map`` with each budget less the KV cache and transient
    memory the device ends up holding; repeated until every device stays inside its budget."""
    import logging
    import warnings

    import torch
    from accelerate import infer_auto_device_map

    # accelerate's names: integers for accelerators (a --memory device too), 'cpu' for RAM
    accelerators = [b for b in budget if b.device != "cpu"]
    ids: dict[Any, str] = {i: b.device for i, b in enumerate(accelerators)}
    ids.update({"cpu": "cpu" for b in budget if b.device == "cpu"})
    limits = {i: b.bytes for i, b in enumerate(accelerators)}
    limits.update({"cpu": b.bytes for b in budget if b.device == "cpu"})

    def runs_on(device: Any) -> Any:
        """Where a module placed on ``device`` computes, so where its KV cache and outputs live:
        accelerate runs offloaded (cpu, disk) layers on the first accelerator."""
        if isinstance(device, int) or not accelerators:
            return device if device != "disk" else "cpu"
        return 0
    num_layers = int(_get(config.get_text_config(decoder=True), "num_hidden_layers"))
    prefix = decoder_layers_prefix(meta, num_layers)
    kv_per_layer: dict[int, int] = {}
    for group in kv.layers if kv else []:
        for index in group.layers:
            kv_per_layer[index] = group.bytes // len(group.layers)
    head = meta.get_output_embeddings()
    head_name = next((n for n, m in meta.named_modules() if m is head), None) if head is not None else None
    element = DTYPE_BYTES[dtype]
    params = [(n, p.numel()) for n, p in meta.named_parameters()]  # tied tensors once

    max_memory = dict(limits)
    accelerate_logger = logging.getLogger("accelerate.utils.modeling")
    level = accelerate_logger.level
    accelerate_logger.setLevel(logging.ERROR)  # "Device 0 is not available": we plan, not load
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # accelerate's advice about offloaded buffers
            for _ in range(20):
                device_map = infer_auto_device_map(
                    meta,
                    max_memory={k: max(int(v), 0) for k, v in max_memory.items()},
                    no_split_module_classes=list(getattr(meta, "_no_split_modules", None) or []),
                    dtype=getattr(torch, dtype),
                )
                used_weights: dict[Any, int] = {}
                for name, numel in params:
                    device = _device_of(name, device_map)
                    used_weights[device] = used_weights.get(device, 0) + int(numel * element)
                used_kv: dict[Any, int] = {}
                layers: dict[Any, list[int]] = {}
                for index in range(num_layers):
                    device = _device_of(f"{prefix}.{index}", device_map) if prefix else None
                    layers.setdefault(device, []).append(index)
                    used_kv[runs_on(device)] = used_kv.get(runs_on(device), 0) + kv_per_layer.get(index, 0)
                head_device = _device_of(head_name, device_map) if head_name else next(iter(limits))
                used_transient = {runs_on(head_device): transient}
                over = False
                for device, limit in limits.items():
                    extra = used_kv.get(device, 0) + used_transient.get(device, 0)
                    total = used_weights.get(device, 0) + extra
                    if total > limit:
                        max_memory[device] -= total - limit
                        over = True
                if not over:
                    break
    finally:
        accelerate_logger.setLevel(level)

    out: list[DevicePlacement] = []
    order = [*limits.keys(), "disk"]
    for device in order:
        if device not in used_weights and device not in layers and device not in used_kv:
            continue
        label = ids.get(device, str(device))
        w, k, t = used_weights.get(device, 0), used_kv.get(device, 0), used_transient.get(device, 0)
        out.append(
            DevicePlacement(
                device=label,
                bytes=w + k + t,
                layers=layers.get(device, []),
                modules=[m for m, d in device_map.items() if d == device],
                weights_bytes=w,
                kv_cache_bytes=k,
                transient_bytes=t,
                budget=limits.get(device),
            )
        )
    return out
