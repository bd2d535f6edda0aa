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
import os
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


class BadHeader(HeaderError):
    """The header declares what the file cannot hold (a length, count or offset past its end), or more
    than any model needs: refused, never handed to a slower reader."""


# Metadata array elements, all arrays together, at most: the largest vocabularies (262,144 tokens, with
# their scores and types) hold about 800,000; every later reader (GGUFReader, transformers' tokenizer
# conversion) builds a Python object per element, about 40 us each.
MAX_ARRAY_ELEMENTS = 2**21
_MIN_KV_BYTES = 8 + 4 + 1  # a key's length, the value type, a one-byte value
_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8  # a name's length, n_dims, one dimension, the type, the offset
_MAX_DIMS = 4  # GGML_MAX_DIMS


def read_header(path: Path | str) -> GgufHeader:
    """Read the metadata and tensor table of the GGUF at PATH, never the tensor data."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size < 24:
            raise BadHeader("the file is shorter than a GGUF header")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as blob:
            try:
                return _parse(blob)
            except struct.error:
                raise BadHeader("the header runs past the end of the file (truncated?)") from None


def _parse(blob: Any) -> GgufHeader:
    if blob[:4] != b"GGUF":
        raise HeaderError("not a GGUF file (no GGUF magic)")
    (version,) = struct.unpack_from("<I", blob, 4)
    if version not in (2, 3):  # version 1 counted in 32 bits; nothing current writes it
        raise HeaderError(f"GGUF version {version} is not read here")
    tensor_count, kv_count = struct.unpack_from("<QQ", blob, 8)
    pos = 24
    _fits(kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_BYTES, blob, pos,
          f"{kv_count:,} metadata keys and {tensor_count:,} tensors")
    metadata: dict[str, Any] = {}
    elements = [0]  # array elements so far, all arrays
    for _ in range(kv_count):
        key, pos = _string(blob, pos)
        (kind,) = struct.unpack_from("<I", blob, pos)
        metadata[key], pos = _value(blob, pos + 4, kind, key, elements)
    tensors = []
    for _ in range(tensor_count):
        name, pos = _string(blob, pos)
        (n_dims,) = struct.unpack_from("<I", blob, pos)
        if n_dims > _MAX_DIMS:
            raise BadHeader(f"tensor {name[:80]} declares {n_dims:,} dimensions (GGUF has at most {_MAX_DIMS})")
        dims = struct.unpack_from(f"<{n_dims}Q", blob, pos + 4)
        pos += 4 + 8 * n_dims
        ggml_type, offset = struct.unpack_from("<IQ", blob, pos)
        pos += 12
        if offset >= len(blob):
            raise BadHeader(f"tensor {name[:80]} starts at {offset:,}, past the end of the file ({len(blob):,} bytes)")
        tensors.append(TensorEntry(name, tuple(int(d) for d in dims), int(ggml_type), int(offset)))
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or not 0 < alignment <= 2**20:
        raise BadHeader(f"general.alignment {alignment!r} is not a positive size of at most 1 MiB")
    data_start = (pos + alignment - 1) // alignment * alignment
    return GgufHeader(version=version, metadata=metadata, tensors=tuple(tensors), data_start=data_start,
                      file_size=len(blob))


def _fits(size: int, blob: Any, pos: int, what: str) -> None:
    """Refuse SIZE bytes from POS that the file does not have, before anything is read or counted."""
    if pos + size > len(blob):
        raise BadHeader(f"{what} would end at byte {pos + size:,}, past the end of the file ({len(blob):,} bytes)")


def _string(blob: Any, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, pos)
    start = pos + 8
    _fits(length, blob, start, f"a string of {length:,} bytes at byte {pos:,}")
    return bytes(blob[start : start + length]).decode("utf-8"), start + length


def _value(blob: Any, pos: int, kind: int, key: str, elements: list[int]) -> tuple[Any, int]:
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
    width = struct.calcsize(_SCALAR[item_kind]) if item_kind in _SCALAR else 8  # a string: its length at least
    _fits(count * width, blob, pos, f"{key[:80]}: {count:,} array elements")
    elements[0] += count
    if elements[0] > MAX_ARRAY_ELEMENTS:
        raise BadHeader(f"{key[:80]}: the metadata arrays hold more than {MAX_ARRAY_ELEMENTS:,} elements "
                        "(the largest vocabularies need under 1,000,000)")
    if item_kind in _SCALAR:
        fmt = _SCALAR[item_kind]
        values = list(struct.unpack_from(f"<{count}{fmt[1]}", blob, pos)) if count else []
        return values, pos + width * count
    if item_kind == _STRING:  # walk the lengths, decode nothing
        unpack = struct.Struct("<Q").unpack_from
        end = len(blob)
        for _ in range(count):
            pos += 8 + unpack(blob, pos)[0]
            if pos > end:
                raise BadHeader(f"{key[:80]}: a string array runs past the end of the file")
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
            raise BadHeader(f"tensor {tensor.name[:80]} runs past the end of the file (truncated?)")
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


def check_declared(header: GgufHeader) -> None:
    """Refuse what the metadata declares beyond what llmscope reads or the file holds: a layer count past
    ``MAX_LAYERS``, a vocabulary larger than the token embedding's rows."""
    from llmscope.config.values import MAX_LAYERS

    for key, value in header.metadata.items():
        if key.endswith(".block_count") and isinstance(value, int) and value > MAX_LAYERS:
            raise BadHeader(f"{key} is {value:,}; llmscope reads models of at most {MAX_LAYERS:,} layers")
    embedding = next((t for t in header.tensors if t.name == "token_embd.weight"), None)
    rows = embedding.dims[1] if embedding is not None and len(embedding.dims) >= 2 else None
    for key, value in header.metadata.items():
        if rows is not None and key.endswith(".vocab_size") and isinstance(value, int) and value > rows:
            raise BadHeader(f"{key} is {value:,}, but token_embd.weight holds {rows:,} rows")


def write_config_stage(path: Path, out: Path) -> str | None:
    """Write the GGUF cache's config stage (config.json, gguf-tensors.json) from one header read.

    None when written; otherwise (nothing written) why the port of transformers' config reader does
    not apply, in a few words: the caller says so and reads the file the slow way. A header that
    declares what the file cannot hold (``BadHeader``) is refused here, whichever transformers is
    installed, so no slower reader ever walks it."""
    import json

    from llmscope.errors import ModelFormatError

    try:
        header = read_header(path)
        check_declared(header)
        summary = tensor_summary(header, path)  # also checks that every tensor lies inside the file
    except BadHeader as exc:
        raise ModelFormatError(f"{path}: not a GGUF file llmscope can read ({exc})",
                               hint="the file is damaged, or declares more than any model holds") from None
    except (HeaderError, UnicodeDecodeError, OSError, ValueError) as exc:
        return f"its header does not read here ({exc})"
    if not port_applies():
        from importlib.metadata import version

        return f"transformers {version('transformers')} reads GGUF configs with code this reader was not compared with"
    values = config_dict(header)
    if values is None:
        return f"transformers builds the {header.metadata.get('general.architecture')!s} config with steps of its own"
    from transformers import CONFIG_MAPPING

    if values.get("model_type") not in CONFIG_MAPPING:
        return f"transformers has no config class for {values.get('model_type')!s}"
    config = CONFIG_MAPPING[values["model_type"]].from_dict(values)
    config.save_pretrained(out)
    (out / "gguf-tensors.json").write_text(json.dumps(summary, indent=1))
    return None
