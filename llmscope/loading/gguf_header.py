"""A GGUF file's header read once: metadata and tensor table, skipping the big string arrays.

``gguf.GGUFReader`` builds a Python object for every element of every metadata array (262k
vocabulary strings for Gemma: seconds), and transformers' GGUF config reader goes through it. What
``inspect`` needs is in the header: the architecture keys, the vocabulary's length and the tensor
table. This reader walks the string arrays' lengths without decoding them, and from the result
builds the tensor summary (as ``gguf_cache.gguf_tensor_summary`` does with GGUFReader) and the config
dict (as transformers' ``load_gguf_checkpoint`` does), where that port is known to match.
"""

from __future__ import annotations

import dataclasses
import functools
import mmap
import struct
from math import prod
from pathlib import Path
from typing import Any

# Metadata value types (the GGUF spec's GGUFValueType).
_STRING, _ARRAY = 8, 9
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_FLOATS = (6, 12)


@dataclasses.dataclass(frozen=True)
class StringArray:
    """A metadata array of strings, read as its length only (the vocabulary, the merges)."""

    count: int


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    name: str
    dims: tuple[int, ...]  # as GGUF stores them: fastest-moving first
    ggml_type: int
    offset: int


@dataclasses.dataclass(frozen=True)
class GgufHeader:
    """The metadata (``key -> value``: int, float, bool, str, list of numbers, or StringArray) and the
    tensor table of one GGUF file."""

    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorEntry, ...]
    data_start: int  # where the tensor data begins (after the table, aligned)
    file_size: int


class HeaderError(ValueError):
    """The file is not a GGUF this reader understands (the caller falls back to GGUFReader)."""


def read_header(path: Path | str) -> GgufHeader:
    """Read the metadata and tensor table of the GGUF at PATH, never the tensor data."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        return _parse(blob)


def _parse(blob: Any) -> GgufHeader:
    if blob[:4] != b"GGUF":
        raise HeaderError("not a GGUF file (no GGUF magic)")
    (version,) = struct.unpack_from("<I", blob, 4)
    if version not in (2, 3):  # version 1 counted in 32 bits; nothing current writes it
        raise HeaderError(f"GGUF version {version} is not read here")
    tensor_count, kv_count = struct.unpack_from("<QQ", blob, 8)
    pos = 24
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key, pos = _string(blob, pos)
        (kind,) = struct.unpack_from("<I", blob, pos)
        metadata[key], pos = _value(blob, pos + 4, kind)
    tensors = []
    for _ in range(tensor_count):
        name, pos = _string(blob, pos)
        (n_dims,) = struct.unpack_from("<I", blob, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", blob, pos + 4)
        pos += 4 + 8 * n_dims
        ggml_type, offset = struct.unpack_from("<IQ", blob, pos)
        pos += 12
        tensors.append(TensorEntry(name, tuple(int(d) for d in dims), int(ggml_type), int(offset)))
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0:
        raise HeaderError("bad general.alignment")
    data_start = (pos + alignment - 1) // alignment * alignment
    return GgufHeader(version=version, metadata=metadata, tensors=tuple(tensors), data_start=data_start,
                      file_size=len(blob))


def _string(blob: Any, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, pos)
    start = pos + 8
    if start + length > len(blob):
        raise HeaderError("a string runs past the end of the file")
    return bytes(blob[start : start + length]).decode("utf-8"), start + length


def _value(blob: Any, pos: int, kind: int) -> tuple[Any, int]:
    if kind in _SCALAR:
        fmt = _SCALAR[kind]
        (value,) = struct.unpack_from(fmt, blob, pos)
        return value, pos + struct.calcsize(fmt)
    if kind == _STRING:
        return _string(blob, pos)
    if kind != _ARRAY:
        raise HeaderError(f"unknown metadata value type {kind}")
    item_kind, count = struct.unpack_from("<IQ", blob, pos)
    pos += 12
    if item_kind in _SCALAR:
        fmt = _SCALAR[item_kind]
        width = struct.calcsize(fmt)
        values = list(struct.unpack_from(f"<{count}{fmt[1]}", blob, pos)) if count else []
        return values, pos + width * count
    if item_kind == _STRING:  # walk the lengths, decode nothing
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            pos += 8 + unpack(blob, pos)[0]
        if pos > len(blob):
            raise HeaderError("a string array runs past the end of the file")
        return StringArray(int(count)), pos
    raise HeaderError(f"arrays of type {item_kind} are not read here")


# --------------------------------------------------------------------------------------------
# The tensor summary, as gguf_cache.gguf_tensor_summary computes it with GGUFReader


def tensor_summary(header: GgufHeader, path: Path) -> dict[str, Any]:
    """Per quantization type: tensor count, elements and bytes as stored; the file type's name."""
    import gguf as gguf_lib

    types: dict[str, dict[str, int]] = {}
    for tensor in header.tensors:
        try:
            kind = gguf_lib.GGMLQuantizationType(tensor.ggml_type)
        except ValueError:
            raise HeaderError(f"unknown tensor type {tensor.ggml_type}") from None
        block_size, type_size = gguf_lib.GGML_QUANT_SIZES[kind]
        elements = prod(tensor.dims)
        if header.data_start + tensor.offset + elements * type_size // block_size > header.file_size:
            raise HeaderError(f"tensor {tensor.name} runs past the end of the file (truncated?)")
        entry = types.setdefault(kind.name, {"tensors": 0, "elements": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["elements"] += int(elements)
        entry["bytes"] += int(elements * type_size // block_size)
    name = None
    file_type = header.metadata.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            name = gguf_lib.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        except ValueError:
            name = None
    return {"file_type": name, "file_bytes": path.stat().st_size, "types": types}


# --------------------------------------------------------------------------------------------
# The config dict, as transformers' load_gguf_checkpoint(...)["config"] builds it

# Architectures whose config transformers builds with extra steps this port does not copy (tensor
# scans, list-valued head counts, rewritten rope scaling...), or through its own newer reader: these
# go through transformers itself.
_NOT_PORTED = ("t5", "stablelm", "lfm2", "gpt_oss", "gpt-oss", "minimax", "gemma4", "qwen35")
# What the port copies: transformers' ``load_gguf_checkpoint`` and the config mappings it reads. The port
# runs only where the installed release's copy of them is one it was compared with (tests/test_latency_paths.py
# fails on a new one): sha256 of those sources -> the releases seen with it.
PORTED_SOURCES = {
    "b05352748469e4d4d934df8730651d0e6fd05b7418b039261e9d8d9b96ae0dad": "transformers 5.23.0, 5.24.0",
}
_COPIED = (("transformers.modeling_gguf_pytorch_utils", ("load_gguf_checkpoint",)),
           ("transformers.integrations.ggml", ("GGUF_CONFIG_MAPPING", "GGUF_CONFIG_DEFAULTS_MAPPING")))


@functools.lru_cache(maxsize=1)
def reader_fingerprint() -> str:
    """sha256 of the installed transformers' source of what this port copies (read as text, not imported)."""
    import ast
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    for module, names in _COPIED:
        spec = importlib.util.find_spec(module)
        text = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef):
                name = node.name
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
            else:
                continue
            if name in names:
                digest.update((ast.get_source_segment(text, node) or "").encode())
    return digest.hexdigest()


def port_applies() -> bool:
    """Whether the installed transformers' GGUF config reader is one this port was compared with."""
    return reader_fingerprint() in PORTED_SOURCES


def config_dict(header: GgufHeader) -> dict[str, Any] | None:
    """The config dict transformers would build from this GGUF's metadata; None where this port is not
    known to match (an architecture with special steps, a transformers whose reader changed)."""
    if not port_applies():
        return None
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    meta = header.metadata
    architecture = meta.get("general.architecture")
    if not isinstance(architecture, str) or any(part in architecture for part in _NOT_PORTED):
        return None
    model_name = [meta["general.name"]] if "general.name" in meta else []
    updated = architecture
    if "llama" in architecture and "mistral" in model_name:  # a list: membership, as transformers has it
        updated = "mistral"
    if "qwen2moe" in architecture:
        updated = "qwen2_moe"
    elif "qwen3moe" in architecture:
        updated = "qwen3_moe"
    if architecture not in GGUF_CONFIG_MAPPING and updated not in GGUF_CONFIG_MAPPING:
        return None  # transformers refuses it: let it say so
    config: dict[str, Any] = {
        "tie_word_embeddings": all(t.name != "output.weight" for t in header.tensors)
        or architecture in ("falcon", "bloom")
    }
    for key, value in (GGUF_CONFIG_DEFAULTS_MAPPING.get(updated, GGUF_CONFIG_DEFAULTS_MAPPING.get(architecture) or {})).items():
        config.setdefault(key, value)
    for gguf_key, value in meta.items():
        gguf_key = gguf_key.replace(architecture, updated)
        prefix, _, config_key = gguf_key.partition(".")
        renames = GGUF_CONFIG_MAPPING.get(prefix)
        if not renames or config_key not in renames:
            continue
        if isinstance(value, StringArray):
            return None  # transformers would decode it into the config: not ported
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str) and architecture in value:
            value = value.replace(architecture, updated)
        target = renames[config_key]
        if target not in (-1, None):
            config[target] = value
    if config.get("model_type") == "gemma3":  # the GGUF holds the text backbone only
        config["model_type"] = "gemma3_text"
    if "vocab_size" not in config:
        tokens = meta.get("tokenizer.ggml.tokens")
        if isinstance(tokens, StringArray):
            config["vocab_size"] = tokens.count
    return config


def write_config_stage(path: Path, out: Path) -> str | None:
    """Write the GGUF cache's config stage (config.json, gguf-tensors.json) from one header read.

    None when written; otherwise (nothing written) why the port of transformers' config reader does
    not apply, in a few words: the caller says so and reads the file the slow way."""
    import json

    try:
        header = read_header(path)
    except (HeaderError, struct.error, UnicodeDecodeError, OSError, ValueError) as exc:
        return f"its header does not read here ({exc})"
    if not port_applies():
        from importlib.metadata import version

        return f"transformers {version('transformers')} reads GGUF configs with code this reader was not compared with"
    values = config_dict(header)
    if values is None:
        return f"transformers builds the {header.metadata.get('general.architecture')!s} config with steps of its own"
    try:
        summary = tensor_summary(header, path)  # also checks that every tensor lies inside the file
    except HeaderError as exc:
        return f"its tensor table does not fit the file ({exc})"
    from transformers import CONFIG_MAPPING

    if values.get("model_type") not in CONFIG_MAPPING:
        return f"transformers has no config class for {values.get('model_type')!s}"
    config = CONFIG_MAPPING[values["model_type"]].from_dict(values)
    config.save_pretrained(out)
    (out / "gguf-tensors.json").write_text(json.dumps(summary, indent=1))
    return None
