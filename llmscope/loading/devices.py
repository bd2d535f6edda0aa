"""Device and dtype names: their spelling, what this machine has, and the dtype a checkpoint was saved in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmscope.errors import DeviceError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PretrainedConfig

DEVICES = ("auto", "cpu", "cuda", "mps")  # plus cuda:N
DTYPES = ("auto", "float32", "bfloat16", "float16")


def validate_device(device: str) -> str:
    """Check the spelling of a device name (not its availability): auto, cpu, cuda, cuda:N, mps."""
    device = device.strip().lower()
    if device in DEVICES:
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise UsageError(f"unknown device {device!r}", hint="use auto, cpu, cuda, cuda:N or mps")


def validate_dtype(dtype: str) -> str:
    """Check the spelling of a dtype name, aliases included (bf16, fp16, fp32, half)."""
    dtype = dtype.strip().lower()
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    dtype = aliases.get(dtype, dtype)
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint="use auto, float32, bfloat16 or float16")
    return dtype


def resolve_device(device: str) -> str:
    """The device a model goes to: 'cpu', 'cuda:N', 'mps', or 'auto' (accelerate spreads it).

    Raises DeviceError when the device asked for is not on this machine.
    """
    import torch

    device = validate_device(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "auto"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"`device={device}`: no CUDA GPU is available on this machine",
                hint="use `device=cpu` (or auto)",
            )
        index = int(device[5:]) if ":" in device else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"`device={device}`: this machine has {count} CUDA device(s)",
                hint=f"use cuda:0 to cuda:{count - 1}",
            )
        return f"cuda:{index}"
    if device == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("`device=mps`: Apple's MPS backend is not available here", hint="use `device=cpu`")
    return device


def resolve_dtype(dtype: str, device: str, config: PretrainedConfig | None = None) -> torch.dtype:
    """'auto' is float32 on the CPU (exact, and fast there) and the checkpoint's dtype elsewhere."""
    import torch

    dtype = validate_dtype(dtype)
    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cpu":
        return torch.float32
    stored = checkpoint_dtype(config) if config is not None else None
    return getattr(torch, stored) if stored in ("float16", "bfloat16") else torch.float32


def checkpoint_dtype(config: PretrainedConfig) -> str | None:
    """The dtype the checkpoint was saved in, as a name ('bfloat16'), from the config."""
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if value is None:
        return None
    return str(value).replace("torch.", "")
