"""What transformers, huggingface_hub, safetensors and jinja raise, turned into one LlmscopeError line.

``translate_errors`` is the one place library errors are mapped; every loader runs inside it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

from llmscope.errors import (
    LlmscopeError,
    ModelFormatError,
    ModelNotFoundError,
    RemoteCodeError,
    ResourceError,
)
from llmscope.loading.resolve import ModelSource


def quiet_transformers() -> None:
    """Keep transformers' and huggingface_hub's own warnings off the screen (their progress bars stay).

    Without this, an unreachable Hub prints two warning lines per retry before llmscope's one line.
    """
    if os.environ.get("LLMSCOPE_DEBUG"):
        return
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hub_logging.set_verbosity_error()


@contextlib.contextmanager
def translate_errors(source: ModelSource, what: str = "model") -> Iterator[None]:
    """Turn what transformers / huggingface_hub / safetensors raise into LlmscopeErrors.

    ``what`` names the part being read ("config", "tokenizer", "weights", "chat template").
    """
    try:
        yield
    except LlmscopeError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - this is the translation point
        raise translate(exc, source, what) from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 300 characters."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(text) > 1 and text[0].endswith(":"):  # "Validation error for field 'x':" then the reason
        return f"{text[0]} {text[1]}"[:300]
    return text[0][:300] if text else type(exc).__name__


def translate(exc: Exception, source: ModelSource, what: str) -> LlmscopeError:
    """The LlmscopeError that says what ``exc`` means for ``source`` (a hub, folder or GGUF model)."""
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc))
    return (
        _access_error(exc, source, names, text)
        or _format_error(exc, source, what, names, text)
        or ModelFormatError(
            f"{source.display_name}: could not load the {what} ({type(exc).__name__}: {first_line(exc)})"
        )
    )


# What a weights file of a folder can be named: transformers' checkpoints (single or sharded, with an
# index), torch's own, a GGUF file.
WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt", "*.pth", "*.gguf",
                "*.h5", "*.msgpack", "*.ckpt.index")


def has_weights_file(folder: str | os.PathLike[str]) -> bool:
    """Whether FOLDER holds any weights file (see ``WEIGHT_FILES``): a folder with only config.json has none."""
    path = Path(folder)
    return any(next(path.glob(pattern), None) is not None for pattern in WEIGHT_FILES)


def missing_weights(source: ModelSource) -> ModelNotFoundError:
    """The error for a model without weights (a config.json alone, written by hand or copied)."""
    where = "the repository" if source.kind == "hub" else "the folder"
    return ModelNotFoundError(
        f"{source.display_name} has no weights: {where} holds no .safetensors, .bin, .pt or .gguf file",
        hint="inspect and memory need no weights: they read config.json alone",
    )


def _access_error(exc: Exception, source: ModelSource, names: set[str], text: str) -> LlmscopeError | None:
    """Errors about reaching the model: sandbox, remote code, gated / missing repositories, offline."""
    name = source.display_name
    if "SecurityError" in names:  # jinja's sandbox stopped a chat template
        return ModelFormatError(
            f"{name}: its chat template tried something jinja's sandbox forbids, and was stopped "
            f"({first_line(exc)})",
            hint="the template may be malicious; nothing was run",
        )
    if "trust_remote_code" in text:
        return RemoteCodeError(
            f"{name} needs to run custom code from its repository to load",
            hint="read that code, then re-run with `trust_remote_code=True` if you trust it",
        )
    if "GatedRepoError" in names:
        return ModelNotFoundError(
            f"{name} is a gated repository",
            hint="accept its terms on the Hub and log in with `hf auth login`",
        )
    if "RevisionNotFoundError" in names:
        return ModelNotFoundError(f"{name}: no revision {source.revision!r} on the Hub", hint="check `revision`")
    if "RepositoryNotFoundError" in names:
        return ModelNotFoundError(
            f"no model {name!r} on the Hugging Face Hub",
            hint="check the spelling, or log in with `hf auth login` for a private repository",
        )
    if source.kind == "hub" and (
        {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} & names or "couldn't connect" in text
    ):
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            return ModelNotFoundError(
                f"{name} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading",
                hint="download it once with network access, or unset HF_HUB_OFFLINE",
            )
        return ModelNotFoundError(
            f"could not download {name}: the Hugging Face Hub is not reachable and it is not cached",
            hint="check the network connection; it is needed once, later runs read the cache",
        )
    return None


def _format_error(
    exc: Exception, source: ModelSource, what: str, names: set[str], text: str
) -> LlmscopeError | None:
    """Errors about the files themselves: missing parts, unsupported, corrupt, unsafe, full disk."""
    name = source.display_name
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
        where = f" that holds {Path(exc.filename).parent}" if exc.filename else ""
        return ResourceError("no space left on the disk", hint=f"free some space on the disk{where}")
    if isinstance(exc, json.JSONDecodeError) or "JSONDecodeError" in names:
        return ModelFormatError(f"{name}: a JSON file of the model is not valid JSON ({exc})")
    if what == "weights" and ("no file named" in text or "does not appear to have a file named" in text):
        return missing_weights(source)  # transformers names safetensors among the files it did not find
    if "SafetensorError" in names or "HeaderTooLarge" in text or "safetensors" in text.lower():
        return ModelFormatError(f"{name}: the safetensors weights are corrupt or truncated ({first_line(exc)})")
    if "UnpicklingError" in names or "weights_only" in text.lower():
        return ModelFormatError(
            f"{name}: the pickle checkpoint holds more than plain tensors and was not loaded",
            hint="llmscope only unpickles with torch's weights-only loader; use a safetensors checkpoint",
        )
    if source.kind == "gguf":
        return ModelFormatError(f"{name}: not a readable or supported GGUF file ({first_line(exc)})")
    return None

