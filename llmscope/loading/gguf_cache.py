"""The GGUF conversion cache: each GGUF file is converted once into safetensors folders, one per stage.

GGUF files are dequantized by transformers, which is slow (about a minute for the 270M demo
model), so each GGUF is converted once into ``$LLMSCOPE_CACHE/gguf/<sha256>/`` with one folder per
stage (``config``, ``tokenizer``, ``model``). A stage is written under a temporary name and renamed
into place only when complete, under a file lock, so a killed or concurrent conversion never leaves
a half cache that is later served; the key is the file's sha256, so a changed file is never stale.
Each stage's marker lists its files' sizes and sha256s, checked before it is served (``cache_files``):
a stage that does not match, or a link planted in its place, is removed and converted again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmscope.errors import MissingDependencyError, ModelFormatError, ModelNotFoundError, ResourceError
from llmscope.loading.cache_files import (
    DamagedEntry, cache_root, file_sha256, in_cache, publish_folder, read_folder, remove, replace_synced, set_aside,
)
from llmscope.progress import reporter
from llmscope.loading.resolve import DEMO_INSTALL_HINT, EMBEDDED_PACKAGE, ModelSource
from llmscope.loading.library_errors import quiet_transformers, translate_errors

CACHE_FORMAT = 3  # bump when the layout of a converted GGUF changes (2: added tokens in tokenizer_config.json;
# 3: the marker lists each file's size and sha256)
STAGES = ("config", "tokenizer", "model")
MARKER = "llmscope-cache.json"


def _disk_full(doing: str = "") -> ResourceError:
    return ResourceError(
        f"no space left on the disk{doing}",
        hint=f"free some space in {cache_root()} or point LLMSCOPE_CACHE elsewhere",
    )


# --------------------------------------------------------------------------------------------
# The embedded model


def _embedded_package() -> Any:
    try:
        import importlib

        return importlib.import_module(EMBEDDED_PACKAGE)
    except ImportError as exc:
        raise MissingDependencyError("the embedded default model is not installed", hint=DEMO_INSTALL_HINT) from exc


def embedded_gguf_path() -> Path:
    """Assemble the demo package's four chunks into one GGUF in the cache (once), sha256-checked."""
    package = _embedded_package()
    target = in_cache(cache_root() / "embedded" / package.MODEL_NAME, kind="file")
    if target.is_file() and file_sha256(target) == package.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    os.close(fd)
    try:
        package.assemble(tmp, overwrite=True)  # verifies the sha256 itself
        replace_synced(Path(tmp), target)
    except FileNotFoundError as exc:
        raise MissingDependencyError(
            f"the embedded model's chunk packages are incomplete ({exc})", hint=DEMO_INSTALL_HINT
        ) from exc
    except ValueError as exc:
        raise ModelFormatError(
            "the embedded model's chunks do not add up to the expected sha256",
            hint="reinstall the demo extra: pip install --force-reinstall 'llmscope[demo]'",
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full() from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


# --------------------------------------------------------------------------------------------
# The stages of a conversion


@dataclasses.dataclass(frozen=True)
class GgufFile:
    """A GGUF file and its cache entry."""

    path: Path
    sha256: str

    @property
    def entry(self) -> Path:
        return cache_root() / "gguf" / f"{self.sha256[:32]}-v{CACHE_FORMAT}"

    def stage(self, name: str) -> Path:
        return self.entry / name


def gguf_file_for(source: ModelSource) -> GgufFile:
    """The GGUF behind a gguf or embedded source, identified by its content."""
    if source.kind == "embedded":
        package = _embedded_package()
        known = GgufFile(cache_root() / "embedded" / package.MODEL_NAME, package.EXPECTED_SHA256)
        # Converted once already: no need to assemble or hash 250 MB again.
        if all(_stage_problem(known.stage(s), known.sha256) is None for s in STAGES):
            return known
        return GgufFile(embedded_gguf_path(), package.EXPECTED_SHA256)
    path = source.gguf_path
    if path is None or not path.is_file():
        raise ModelNotFoundError(f"no such GGUF file: {path}")
    try:
        return GgufFile(path, file_sha256(path))
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc.strerror}") from exc


def _stage_problem(folder: Path, sha256: str) -> str | None:
    """What keeps the stage FOLDER from being served (None: it is complete, converted from the GGUF
    whose sha256 is SHA256, every file as written); "" when there is none yet."""
    try:
        record = read_folder(folder, MARKER)
    except FileNotFoundError:
        return ""
    except DamagedEntry as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if record.get("sha256") != sha256 or record.get("format") != CACHE_FORMAT:
        return "was converted from another file"
    return None


def ensure_gguf_stage(gguf: GgufFile, stage: str, source: ModelSource) -> Path:
    """Return the cache folder of one conversion stage, converting it first if needed.

    Stages: ``config`` (config.json and the GGUF tensor summary), ``tokenizer``, ``model``. A link
    planted on the way (``gguf/<key>`` pointing elsewhere) is removed, the link only, before anything
    is written or deleted; a stage that is damaged is removed with a notice and converted again.
    """
    from filelock import FileLock

    said = {"what": f"converted GGUF stage ({stage})", "redo": "converting it again"}
    final = in_cache(gguf.stage(stage), kind="folder", **said)
    if _stage_problem(final, gguf.sha256) is None:
        return final
    gguf.entry.mkdir(parents=True, exist_ok=True)
    with FileLock(str(in_cache(gguf.entry / f"{stage}.lock", kind="file", **said))):
        problem = _stage_problem(final, gguf.sha256)
        if problem is None:  # another process finished it meanwhile
            return final
        # We hold the lock: anything half-written for this stage is a dead process's leftover.
        for stale in gguf.entry.glob(f".{stage}.tmp-*"):
            with contextlib.suppress(OSError):
                remove(stale)
        if problem:  # damaged, incomplete or foreign: never serve it
            set_aside(final, problem, **said)
        _convert_into(gguf, stage, source, final)
    return final


def _convert_into(gguf: GgufFile, stage: str, source: ModelSource, final: Path) -> None:
    """Convert one stage into a temporary folder, mark it complete, then rename it to ``final``."""
    tmp = Path(tempfile.mkdtemp(dir=gguf.entry, prefix=f".{stage}.tmp-"))
    try:
        with translate_errors(source, what=stage):
            try:
                _convert_stage(gguf, stage, tmp)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:  # before translate_errors, to name the cache
                    raise _disk_full(" while converting the GGUF file") from exc
                raise
        marker = {"sha256": gguf.sha256, "source": str(gguf.path), "stage": stage, "format": CACHE_FORMAT}
        publish_folder(tmp, final, marker, MARKER)  # every file on disk, with its size and sha256
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise _disk_full(" while converting the GGUF file") from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _record_added_tokens(tokenizer: Any, config_file: Path) -> None:
    """Write ``added_tokens_decoder`` into tokenizer_config.json, in the form transformers reads.

    Without it, every load json-parses the whole tokenizer.json in Python only to find the added
    tokens (33 MB and 6k added tokens for Gemma: about a second of the cached load).
    """
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(index): token.__getstate__() for index, token in sorted(tokenizer.added_tokens_decoder.items())
    }
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def _convert_stage(gguf: GgufFile, stage: str, out: Path) -> None:
    """Write stage ``stage`` of ``gguf`` into the folder ``out``, as transformers reads the GGUF."""
    quiet_transformers()
    converters = {"config": _convert_config, "tokenizer": _convert_tokenizer, "model": _convert_model}
    converters[stage](gguf, out)


def _convert_config(gguf: GgufFile, out: Path) -> None:
    from transformers import AutoConfig

    from llmscope.loading.gguf_header import write_config_stage

    why_not = write_config_stage(gguf.path, out)  # one header read, the big arrays skipped (gguf_header.py)
    if why_not is None:
        return
    reporter().notice(f"GGUF metadata of {gguf.path.name}: the fast header read does not apply ({why_not}); "
                      "reading it the slow way")
    folder, name = str(gguf.path.parent), gguf.path.name
    with reporter().status(f"Reading the GGUF metadata of {name} (once; cached)"):
        # Both parse the whole metadata in pure Python (GIL-bound): run them side by side.
        # "spawn": safe whatever threads torch has started; leaving the block ends the worker,
        # also when Ctrl-C or an error comes first.
        import multiprocessing

        try:
            pool = multiprocessing.get_context("spawn").Pool(1)
        except (OSError, ImportError, NotImplementedError):  # no semaphores or processes here
            pool = None
        if pool is None:
            config = AutoConfig.from_pretrained(folder, gguf_file=name)
            summary = gguf_tensor_summary(gguf.path)
        else:
            with pool:
                pending = pool.apply_async(gguf_tensor_summary, (gguf.path,))
                config = AutoConfig.from_pretrained(folder, gguf_file=name)
                summary = pending.get()
    config.save_pretrained(out)
    (out / "gguf-tensors.json").write_text(json.dumps(summary, indent=1))


def _convert_tokenizer(gguf: GgufFile, out: Path) -> None:
    from transformers import AutoTokenizer

    folder, name = str(gguf.path.parent), gguf.path.name
    with reporter().status(f"Converting the tokenizer of {name} (once; cached)"):
        # transformers carries the GGUF's tokenizer.chat_template over (rendered later in jinja's sandbox).
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(out)
    _record_added_tokens(tokenizer, out / "tokenizer_config.json")


@contextlib.contextmanager
def _hub_bars_setting() -> Any:
    """transformers' GGUF de-quantizing bar is a bare tqdm: make it follow HF_HUB_DISABLE_PROGRESS_BARS too."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None or not are_progress_bars_disabled():
        yield
        return
    gguf_utils.tqdm = lambda *args, **kwargs: bar(*args, **{**kwargs, "disable": True})
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _convert_model(gguf: GgufFile, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    folder, name = str(gguf.path.parent), gguf.path.name
    reporter().notice(
        f"Converting {name} to safetensors (once, about a minute for a small model; later loads read {gguf.entry})"
    )
    with _hub_bars_setting():
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are already dequantized to float32 tensors; drop the GGUF marker so that
    # save_pretrained writes them as a plain safetensors checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)


def gguf_tensor_summary(path: Path) -> dict[str, Any]:
    """Per quantization type: tensor count, elements and bytes as stored (from the gguf package).

    GGUFReader parses every metadata array on the way (262k vocabulary strings for Gemma, about
    12 s), so the config stage runs this in a second process while transformers reads the config.
    """
    import gguf as gguf_lib

    reader = gguf_lib.GGUFReader(str(path))
    types: dict[str, dict[str, int]] = {}
    for tensor in reader.tensors:
        entry = types.setdefault(tensor.tensor_type.name, {"tensors": 0, "elements": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["elements"] += int(tensor.n_elements)
        entry["bytes"] += int(tensor.n_bytes)
    file_type = reader.fields.get("general.file_type")
    name = None
    if file_type is not None:
        with contextlib.suppress(Exception):
            name = gguf_lib.LlamaFileType(int(file_type.contents())).name.removeprefix("MOSTLY_")
    return {"file_type": name, "file_bytes": path.stat().st_size, "types": types}


def gguf_summary(source: ModelSource) -> dict[str, Any] | None:
    """The cached tensor summary of a GGUF source (None for other sources)."""
    if source.kind not in ("gguf", "embedded"):
        return None
    gguf = gguf_file_for(source)
    folder = ensure_gguf_stage(gguf, "config", source)
    return json.loads((folder / "gguf-tensors.json").read_text())


