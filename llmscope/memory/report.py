"""Will a model fit: weights, KV cache and transient memory against a budget, from the config alone.

Like ``inspect``, the model is built on the meta device (no weights, no memory), parameters are
counted exactly (tied weights once, every expert of a MoE model resident), and the KV cache comes
from the one estimate that ``inspect`` shows too (:func:`llmscope.config.kv_cache.kv_cache_estimate`),
which asks transformers' ``DynamicCache(config=...)`` which layers slide and over what window.
With several devices, :mod:`llmscope.memory.placement` plans where each layer goes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.loading import devices
from llmscope.loading import gguf_cache
from llmscope.config import deep_build
from llmscope.loading import library_errors
from llmscope.config.kv_cache import KVCacheEstimate, kv_cache_estimate
from llmscope.config.values import config_value, context_length, text_config
from llmscope.errors import UsageError
from llmscope.memory.placement import (
    DeviceBudget,
    DevicePlacement,
    longest_context,
    machine_budget,
    parse_gpus,
    plan_fits,
    plan_placement,
)
from llmscope.config.state import RecurrentStateEstimate, recurrent_state_estimate
from llmscope.config.state import family as recurrent_family
from llmscope.memory.transient import ForwardShape, check_attn_implementation, check_mode, forward_shape, transient_at_peak
from llmscope.units import parse_size
from llmscope.config.parameters import DTYPE_BYTES, GgufInfo, gguf_info

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

    from llmscope.memory.measure import Measurement

MEMORY_DTYPES = ("float32", "bfloat16", "float16")
UNLIMITED_CONTEXT = 1 << 30  # the search ceiling when a model states no maximum (or --allow-longer)

DEFAULT_CONTEXT = 2048  # tokens sized when the config gives no context length


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
    file_bytes: int | None = None  # GGUF: the file on disk
    tensor_bytes: int | None = None  # GGUF: its tensor data alone (what a runtime holds of the weights)
    bits_per_weight: float | None = None  # GGUF: of its quantization mix
    gguf: GgufInfo | None = None  # GGUF: per tensor type

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "bytes": self.bytes}
        if self.gguf is not None:
            out["file_bytes"] = self.file_bytes
            out["tensor_bytes"] = self.tensor_bytes
            out["bits_per_weight"] = self.bits_per_weight
            out["file_type"] = self.gguf.file_type
            out["types"] = [
                {"type": t.type, "tensors": t.tensors, "elements": t.elements, "bytes": t.bytes,
                 "bits_per_weight": t.bits_per_weight}
                for t in self.gguf.types
            ]
        return out


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
    kv_cache: KVCacheEstimate | None  # None for encoder-only and recurrent models
    recurrent_state: RecurrentStateEstimate | None  # Mamba, RWKV, xLSTM, a hybrid's state layers: at any context
    transient_bytes: int
    transient: dict[str, int]  # its parts: logits, mlp
    needed_bytes: int  # weights + KV cache + transient
    budget: list[DeviceBudget]
    budget_from_machine: bool
    fits: bool
    headroom_bytes: int
    max_context: int | None
    placement: list[DevicePlacement] | None
    context: int = 0  # tokens per sequence the report is for
    batch: int = 1
    mode: str = "generate"  # what the transient is for: generate (last-position logits) or forward (all)
    attn_implementation: str | None = None  # the attention transformers runs, as the transient assumes
    transient_peak: str | None = None  # where the peak falls: attention, mlp, selective_scan or lm_head
    transient_shapes: dict[str, str] = dataclasses.field(default_factory=dict)  # each transient term's tensors
    measurement: Measurement | None = None  # --measure: the peak of the same run

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "source": self.source,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "recurrent_state": self.recurrent_state,
            "transient_bytes": self.transient_bytes,
            "transient": self.transient,
            "needed_bytes": self.needed_bytes,
            "budget": self.budget,
            "fits": self.fits,
            "headroom_bytes": self.headroom_bytes,
            "max_context": self.max_context,
            "max_position_embeddings": self.max_position_embeddings,
            "placement": self.placement,
            "context": self.context,
            "batch": self.batch,
            "mode": self.mode,
            "attn_implementation": self.attn_implementation,
            "transient_peak": self.transient_peak,
            "transient_shapes": self.transient_shapes,
            "measured_bytes": self.measurement.bytes if self.measurement else None,
            "measured_ratio": round(self.measurement.bytes / self.needed_bytes, 4) if self.measurement else None,
            "measurement": self.measurement,
        }


# --------------------------------------------------------------------------------------------
# The public function


def memory_report(
    model: loading.ModelLike = None,
    *,
    context: int | None = None,
    batch: int = 1,
    dtype: str = "bfloat16",
    kv_dtype: str | None = None,
    memory: str | int | None = None,
    gpus: str | list[int | str] | None = None,
    cpu: str | int | None = None,
    allow_longer: bool = False,
    mode: str = "generate",
    attn_implementation: str | None = None,
    measure: bool = False,
    runs: int = 1,
) -> MemoryReport:
    """What MODEL needs at ``context`` tokens x ``batch`` sequences, and whether it fits the budget.

    ``memory`` is one device's budget ('24GiB'); ``gpus`` several ('2x80GiB'), with ``cpu`` RAM to
    spill into. Without either, the budget is this machine's GPUs, else its available RAM.
    ``mode``: 'generate' (prefill, then one token: last-position logits) or 'forward' (every
    position's logits). ``measure``: run it, ``runs`` times (:mod:`llmscope.memory.measure`).

    MODEL is any form ``load`` takes: a ``LoadSpec`` carries the revision, the GGUF file and
    ``trust_remote_code``. ``dtype`` (and ``kv_dtype``) are what to size, not how to load: nothing is
    loaded, so a LoadSpec's own ``dtype`` and ``device`` play no part (``measure`` loads at ``dtype``
    on this machine's first GPU, else the CPU).
    """
    # Values first: nothing is read before they are known to be good.
    dtype, kv_dtype, mode, attn_implementation = _checked_values(
        context=context, batch=batch, memory=memory, gpus=gpus, dtype=dtype, kv_dtype=kv_dtype, mode=mode,
        attn_implementation=attn_implementation, runs=runs,
    )
    budget = _given_budget(memory, gpus, cpu)
    trust_remote_code = loading.load_spec(model).trust_remote_code  # a LoadedModel: as it was loaded
    if isinstance(model, loading.LoadedModel):
        source = model.source
        config = model.config
    else:
        source = loading.source_of(model)
        config = loading.load_config(source, trust_remote_code=trust_remote_code)
    if dtype == "auto":
        dtype = _auto_dtype(config)
    kv_dtype = dtype if kv_dtype in (None, "auto") else kv_dtype
    context = _sized_context(config, context, allow_longer=allow_longer)

    with library_errors.translate_errors(source, what="config"):
        meta = deep_build.build_meta_model(config, trust_remote_code=trust_remote_code)  # deep: a prefix
    gguf = gguf_cache.gguf_summary(source)
    report = report_from_meta(
        config, meta, source=source.display_name, context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype,
        budget=budget, allow_longer=allow_longer, gguf=gguf, mode=mode, attn_implementation=attn_implementation,
    )
    if not measure:
        return report
    from llmscope.memory.measure import measure_report

    return measure_report(
        report, model, kv_dtype=kv_dtype, several_devices=gpus is not None or cpu is not None, runs=runs
    )


def _checked_values(
    *, context: int | None, batch: int, memory: object, gpus: object, dtype: str, kv_dtype: str | None, mode: str,
    attn_implementation: str | None, runs: int,
) -> tuple[str, str | None, str, str | None]:
    """Refuse a bad value before anything is read; the dtypes, mode and attention by their canonical names."""
    if context is not None and context <= 0:
        raise UsageError(f"`context={context}`: must be at least 1 token")
    if batch <= 0:
        raise UsageError(f"`batch={batch}`: must be at least 1 sequence")
    if memory is not None and gpus is not None:
        raise UsageError("`memory` and `gpus` both given", hint="use `memory` for one device, `gpus` for several")
    dtype = _memory_dtype(dtype, "dtype")
    kv_dtype = _memory_dtype(kv_dtype, "kv_dtype") if kv_dtype is not None else None
    mode, attn_implementation = check_mode(mode), check_attn_implementation(attn_implementation)
    if runs < 1:
        raise UsageError(f"`runs={runs}`: must be at least 1")
    return dtype, kv_dtype, mode, attn_implementation


def _given_budget(
    memory: str | int | None, gpus: str | list[int | str] | None, cpu: str | int | None
) -> list[DeviceBudget] | None:
    """The budget the caller gave (None: none given, this machine's is used)."""
    budget: list[DeviceBudget] | None = None
    if memory is not None:
        budget = [DeviceBudget("memory", parse_size(memory), "given")]
    elif gpus is not None:
        budget = [DeviceBudget(f"cuda:{i}", size, "given") for i, size in enumerate(parse_gpus(gpus))]
    if cpu is not None:
        budget = [*(budget or []), DeviceBudget("cpu", parse_size(cpu), "given")]
    return budget


def _sized_context(config: PretrainedConfig, context: int | None, *, allow_longer: bool) -> int:
    """The context to size: the one asked for (within the model's maximum unless ``allow_longer``),
    else the model's maximum, else DEFAULT_CONTEXT with a notice."""
    limit = context_length(config)
    if context is None:
        if not limit:  # max_position_embeddings 0 or missing: say what is assumed, never silently
            from llmscope.progress import reporter

            reporter().notice(f"The config gives no context length (max_position_embeddings 0 or missing): "
                              f"sizing for {DEFAULT_CONTEXT:,} tokens; give --context N to choose")
        return limit or DEFAULT_CONTEXT
    if limit and context > limit and not allow_longer:
        raise UsageError(
            f"`context={context:,}` is beyond this model's maximum of {limit:,} tokens",
            hint="pass `allow_longer=True` to size it anyway",
        )
    return context


def _memory_dtype(value: str, option: str) -> str:
    name = devices.validate_dtype(value)  # aliases: bf16, fp16, fp32
    if name != "auto" and name not in MEMORY_DTYPES:  # pragma: no cover - validate_dtype knows the same
        raise UsageError(f"`{option}={value}`: unknown dtype", hint="use float32, bfloat16 or float16")
    return name


def _auto_dtype(config: PretrainedConfig) -> str:
    stored = devices.checkpoint_dtype(config)
    return stored if stored in MEMORY_DTYPES else "float32"


# --------------------------------------------------------------------------------------------
# Assembling the report


def report_from_meta(
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
    gguf: dict[str, Any] | None = None,
    mode: str = "generate",
    attn_implementation: str | None = None,
) -> MemoryReport:
    """Assemble the report from a config and the model built from it on the meta device."""
    masked = loading.is_masked_lm(config)
    parameters = _parameters(config, meta)
    weights = _weights(parameters.total, dtype, gguf)
    # a recurrent model's state instead of a KV cache; a hybrid's Mamba / linear-attention state beside it
    state = None if masked else recurrent_state_estimate(config, batch=batch, dtype=kv_dtype)
    pure = recurrent_family(config) is not None  # no attention at all
    kv = None if masked or pure else kv_cache_estimate(config, context=context, batch=batch, dtype=kv_dtype)
    shape = forward_shape(config, meta, attn_implementation=attn_implementation, causal=not masked)
    estimate = transient_at_peak(shape, context=context, batch=batch, dtype=dtype, mode=mode, kv=kv)
    transient = estimate.as_dict()
    needed = weights.bytes + (kv.bytes if kv else 0) + (state.bytes if state else 0) + sum(transient.values())

    from_machine = budget is None
    if budget is None:
        budget = machine_budget()
    total_budget = sum(b.bytes for b in budget)
    placement = None
    if len(budget) > 1:
        placement = plan_placement(
            deep_build.full_model(meta), config, budget, dtype=dtype, kv=kv,
            transient=sum(transient.values()) + (state.bytes if state else 0),
        )
    fits = plan_fits(placement) if placement is not None else needed <= total_budget

    limit = context_length(config)
    max_context = _max_context(
        config, meta, budget, weights_bytes=weights.bytes, state_bytes=state.bytes if state else 0,
        kv_cache=kv is not None, limit=limit, context=context, shape=shape, mode=estimate.mode,
        batch=batch, dtype=dtype, kv_dtype=kv_dtype, allow_longer=allow_longer,
    )
    return MemoryReport(
        model=source, source=source, model_type=config.model_type, architecture=type(meta).__name__,
        kind="masked" if masked else "causal",
        num_hidden_layers=int(config_value(text_config(config), "num_hidden_layers")), max_position_embeddings=limit,
        parameters=parameters, weights=weights, kv_cache=kv, recurrent_state=state,
        transient_bytes=sum(transient.values()), transient=transient, needed_bytes=needed,
        budget=budget, budget_from_machine=from_machine, fits=fits, headroom_bytes=total_budget - needed,
        max_context=max_context, placement=placement, context=context, batch=batch, mode=estimate.mode,
        attn_implementation=estimate.attn_implementation, transient_peak=estimate.peak,
        transient_shapes=estimate.shapes(),
    )


def _parameters(config: PretrainedConfig, meta: nn.Module) -> ParameterSummary:
    """Exact counts of the whole model (also from a prefix build), and its experts."""
    moe, counts = deep_build.exact_counts(config, meta)
    return ParameterSummary(
        total=counts.total,
        active=counts.active,
        num_experts=moe.num_experts if moe else None,
        num_experts_per_tok=moe.num_experts_per_tok if moe else None,
    )


def _weights(total: int, dtype: str, gguf: dict[str, Any] | None) -> WeightsMemory:
    """TOTAL parameters at DTYPE; for a GGUF, also what its file and tensors take."""
    stored = gguf_info(gguf) if gguf else None
    return WeightsMemory(
        dtype=dtype,
        bytes=int(total * DTYPE_BYTES[dtype]),
        file_bytes=stored.file_bytes if stored else None,
        tensor_bytes=stored.tensor_bytes if stored else None,
        bits_per_weight=stored.bits_per_weight if stored else None,
        gguf=stored,
    )


def _max_context(
    config: PretrainedConfig,
    meta: nn.Module,
    budget: list[DeviceBudget],
    *,
    weights_bytes: int,
    state_bytes: int,
    kv_cache: bool,
    limit: int | None,
    context: int,
    batch: int,
    dtype: str,
    kv_dtype: str,
    allow_longer: bool,
    shape: ForwardShape,
    mode: str,
) -> int:
    """The longest context that fits the budget: placed anew at each length on several devices."""
    ceiling = UNLIMITED_CONTEXT if allow_longer or not limit else limit
    ceiling = max(ceiling, context) if allow_longer else ceiling
    total_budget = sum(b.bytes for b in budget)

    def fits_at(tokens: int) -> bool:
        kv = kv_cache_estimate(config, context=tokens, batch=batch, dtype=kv_dtype) if kv_cache else None
        # a recurrent state does not grow with the context: placed like the transient memory
        transient = transient_at_peak(shape, context=tokens, batch=batch, dtype=dtype, mode=mode, kv=kv).bytes
        transient += state_bytes
        if len(budget) > 1:  # each device holds its own layers' cache
            return plan_fits(plan_placement(deep_build.full_model(meta), config, budget, dtype=dtype, kv=kv, transient=transient))
        return weights_bytes + (kv.bytes if kv else 0) + transient <= total_budget

    return longest_context(fits_at, ceiling)
