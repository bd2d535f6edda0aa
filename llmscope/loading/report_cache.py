"""A second ``inspect`` of the same model answers from a cache, without importing torch or transformers.

The report depends only on the config (and a GGUF's tensor summary), transformers' version and
llmscope's own code, so it is cached under a key made of their contents: the config.json's sha256
(or the GGUF's), both versions, and the sha256 of llmscope's source files. An entry is written
whole (temporary file, then rename) and only after checking that it reads back equal to the report;
an entry that does not read back, or any other format, is ignored, and a notice says so. Hub ids and remote code are not
cached (what a Hub id names can change).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmscope.loading.cache_files import atomic_write_text, cache_root, file_sha256, in_cache
from llmscope.progress import reporter

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.config.architecture import ArchitectureReport
    from llmscope.loading.resolve import ModelSource

CACHE_FORMAT = 1


def _key(source: ModelSource, modules: bool) -> str | None:
    from importlib.metadata import version

    if source.kind == "folder":
        config = Path(source.location) / "config.json"
        if not config.is_file():
            return None
        content = file_sha256(config)
    elif source.kind in ("gguf", "embedded"):
        from llmscope.loading.gguf_cache import gguf_file_for

        content = gguf_file_for(source).sha256
    else:
        return None
    parts = [str(CACHE_FORMAT), source.kind, content, str(modules), source.display_name,
             version("transformers"), _code_digest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """sha256 of llmscope's own source files: a changed reader never serves an old report."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]  # llmscope/, every subpackage included
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _entry(key: str) -> Path:
    return in_cache(cache_root() / "inspect" / f"{key[:40]}.json", kind="file", what="inspect cache entry",
                    redo="computing the report again")


def load(source: ModelSource, report_class: type[ArchitectureReport], *, modules: bool,
         trust_remote_code: bool) -> ArchitectureReport | None:
    """The cached report of SOURCE (read back as ``report_class``), or None."""
    if trust_remote_code:
        return None
    try:
        key = _key(source, modules)
        if key is None:
            return None
        text = _entry(key).read_text(encoding="utf-8")
    except FileNotFoundError:  # not seen yet: computed and stored
        return None
    except OSError as exc:
        reporter().notice(f"inspect cache not read ({exc.strerror or exc}): computing the report")
        return None
    try:
        data = json.loads(text)
        if data.get("format") != CACHE_FORMAT or data.get("key") != key:
            raise ValueError("another format or key")
        return decode(report_class, data["report"])
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        reporter().notice(f"inspect cache entry unreadable ({exc}): computing the report again")
        return None


def store(source: ModelSource, report: ArchitectureReport, *, modules: bool, trust_remote_code: bool) -> None:
    """Cache REPORT for SOURCE, if it reads back equal (never raises for a cache it cannot write)."""
    if trust_remote_code:
        return
    try:
        key = _key(source, modules)
        if key is None:
            return
        document = {"format": CACHE_FORMAT, "key": key, "report": dataclasses.asdict(report)}
        text = json.dumps(document, ensure_ascii=False)
        if decode(type(report), json.loads(text)["report"]) != report:
            reporter().notice("inspect report not cached: it does not read back equal from JSON")
            return
        atomic_write_text(_entry(key), text)
    except (OSError, TypeError, ValueError) as exc:
        reporter().notice(f"inspect report not cached ({exc}): the next inspect computes it again")


# --------------------------------------------------------------------------------------------
# Dataclasses back from JSON, by their type hints


def decode(kind: Any, value: Any) -> Any:
    """VALUE (from json) as an instance of KIND: dataclasses, lists, tuples, dicts and unions of them."""
    if value is None:
        return None
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = _hints(kind)
        return kind(**{f.name: decode(hints[f.name], value[f.name]) for f in dataclasses.fields(kind) if f.init})
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            if option is type(None):
                continue
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return decode(option, value)
            if typing.get_origin(option) in (list, tuple) and isinstance(value, list):
                return decode(option, value)
            if typing.get_origin(option) is dict and isinstance(value, dict):
                return decode(option, value)
        return value
    if origin is list:
        return [decode(args[0] if args else Any, v) for v in value]
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(decode(item, v) for v in value)
    if origin is dict:
        return {k: decode(args[1] if len(args) == 2 else Any, v) for k, v in value.items()}
    return value


@lru_cache(maxsize=None)
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)
