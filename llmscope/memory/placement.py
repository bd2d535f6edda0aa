"""Where a model's layers go on several devices, and the longest context a budget holds.

accelerate's ``infer_auto_device_map`` places the weights; each device's budget is then lowered by
the KV cache and transient memory that device ends up holding, and the plan is made again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmscope.loading import ram_guard
from llmscope.config.values import config_value, text_config
from llmscope.errors import UsageError
from llmscope.units import parse_size
from llmscope.config.parameters import DTYPE_BYTES, decoder_layers_prefix

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PretrainedConfig

    from llmscope.config.kv_cache import KVCacheEstimate


# --------------------------------------------------------------------------------------------
# Budgets


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
                raise UsageError(f"`gpus={text}`: the number of GPUs must be 1 to {MAX_GPUS}")
            sizes = [parse_size(match.group(2))] * count
        else:
            sizes = [parse_size(s) for s in text.split(",") if s.strip()]
    if not sizes:
        raise UsageError(f"cannot read `gpus={text!r}`", hint="write it like 2x80GiB or 24GiB,48GiB")
    if len(sizes) > MAX_GPUS:
        raise UsageError(f"`gpus`: {len(sizes)} GPUs, more than {MAX_GPUS}")
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
    ram = DeviceBudget("cpu", ram_guard.available_ram(), "available RAM")
    return [*gpus, ram]


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


# --------------------------------------------------------------------------------------------
# Fitting


def plan_fits(placement: list[DevicePlacement]) -> bool:
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


def device_of(name: str, device_map: dict[str, Any]) -> Any:
    """The device of a module or parameter name: its longest prefix in the device map."""
    best, best_len = None, -1
    for key, device in device_map.items():
        if (key == "" or name == key or name.startswith(key + ".")) and len(key) > best_len:
            best, best_len = device, len(key)
    return best


@dataclasses.dataclass
class _Usage:
    """One round of accelerate's plan and what each of its devices then holds (accelerate's keys)."""

    device_map: dict[str, Any]
    weights: dict[Any, int]
    kv: dict[Any, int]
    transient: dict[Any, int]
    layers: dict[Any, list[int]]

    def total(self, device: Any) -> int:
        return self.weights.get(device, 0) + self.kv.get(device, 0) + self.transient.get(device, 0)


@contextlib.contextmanager
def _quiet_accelerate() -> Iterator[None]:
    accelerate_logger = logging.getLogger("accelerate.utils.modeling")
    level = accelerate_logger.level
    accelerate_logger.setLevel(logging.ERROR)  # "Device 0 is not available": we plan, not load
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # accelerate's advice about offloaded buffers
            yield
    finally:
        accelerate_logger.setLevel(level)


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

    num_layers = int(config_value(text_config(config), "num_hidden_layers"))
    prefix = decoder_layers_prefix(meta, num_layers)
    kv_per_layer: dict[int, int] = {}  # model layer -> its cache bytes (a looped layer's copies included)
    groups = kv.layers if kv else []
    from llmscope.config.kv_cache import cache_layer_owners

    owners = cache_layer_owners(text_config(config)) if any(i >= num_layers for g in groups for i in g.layers) else []
    for group in groups:
        for index in group.layers:
            owner = index if index < num_layers else owners[index]  # a copy lives where its layer runs
            kv_per_layer[owner] = kv_per_layer.get(owner, 0) + group.bytes // len(group.layers)
    head = meta.get_output_embeddings()
    head_name = next((n for n, m in meta.named_modules() if m is head), None) if head is not None else None
    element = DTYPE_BYTES[dtype]
    params = [(n, p.numel()) for n, p in meta.named_parameters()]  # tied tensors once

    def usage(device_map: dict[str, Any]) -> _Usage:
        weights: dict[Any, int] = {}
        for name, numel in params:
            device = device_of(name, device_map)
            weights[device] = weights.get(device, 0) + int(numel * element)
        used_kv: dict[Any, int] = {}
        layers: dict[Any, list[int]] = {}
        for index in range(num_layers):
            device = device_of(f"{prefix}.{index}", device_map) if prefix else None
            layers.setdefault(device, []).append(index)
            used_kv[runs_on(device)] = used_kv.get(runs_on(device), 0) + kv_per_layer.get(index, 0)
        head_device = device_of(head_name, device_map) if head_name else next(iter(limits))
        return _Usage(device_map, weights, used_kv, {runs_on(head_device): transient}, layers)

    max_memory = dict(limits)
    with _quiet_accelerate():
        for _ in range(20):
            used = usage(
                infer_auto_device_map(
                    meta,
                    max_memory={k: max(int(v), 0) for k, v in max_memory.items()},
                    no_split_module_classes=list(getattr(meta, "_no_split_modules", None) or []),
                    dtype=getattr(torch, dtype),
                )
            )
            over = {device: used.total(device) - limit for device, limit in limits.items() if used.total(device) > limit}
            for device, excess in over.items():
                max_memory[device] -= excess
            if not over:
                break
    return _rows(used, ids, limits)


def _rows(used: _Usage, ids: dict[Any, str], limits: dict[Any, int]) -> list[DevicePlacement]:
    out: list[DevicePlacement] = []
    for device in [*limits.keys(), "disk"]:
        if device not in used.weights and device not in used.layers and device not in used.kv:
            continue
        w, k, t = used.weights.get(device, 0), used.kv.get(device, 0), used.transient.get(device, 0)
        out.append(
            DevicePlacement(
                device=ids.get(device, str(device)),
                bytes=w + k + t,
                layers=used.layers.get(device, []),
                modules=[m for m, d in used.device_map.items() if d == device],
                weights_bytes=w,
                kv_cache_bytes=k,
                transient_bytes=t,
                budget=limits.get(device),
            )
        )
    return out
