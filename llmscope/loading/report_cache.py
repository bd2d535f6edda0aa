"""A second ``inspect`` of the same model answers from a cache, without importing torch or transformers.

The report depends only on the config (and a GGUF's tensor summary), transformers' version and
llmscope's own code, so it is cached under a key made of their contents: the config.json's sha256
(or the GGUF's), both versions, and the sha256 of llmscope's source files. An entry is a record
(``cache_files``: written whole and fsynced, its sha256 on its first line) stored only after checking
that it reads back equal to the report. On the way back every value is checked against the report's
type hints; an entry that fails (cut short, a link, another shape) is removed with a notice and the
report computed again. Hub ids and remote code are not cached (what a Hub id names can change).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmscope.loading.cache_files import (
    DamagedEntry, cache_root, file_sha256, in_cache, read_json, set_aside, write_record,
)
from llmscope.progress import reporter

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.config.architecture import ArchitectureReport
    from llmscope.loading.resolve import ModelSource

CACHE_FORMAT = 2  # 2: a record with its sha256 (cache_files), read back by the type hints


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


_SAID = {"what": "inspect cache entry", "redo": "computing the report again"}


def _entry(key: str) -> Path:
    return in_cache(cache_root() / "inspect" / f"{key[:40]}.json", kind="file", **_SAID)


def _discard(path: Path, why: str) -> None:
    set_aside(path, why, **_SAID)


def load(source: ModelSource, report_class: type[ArchitectureReport], *, modules: bool,
         trust_remote_code: bool) -> ArchitectureReport | None:
    """The cached report of SOURCE (read back as ``report_class``), or None."""
    if trust_remote_code:
        return None
    try:
        key = _key(source, modules)
        if key is None:
            return None
        path = _entry(key)
        data = read_json(path)
    except FileNotFoundError:  # not seen yet: computed and stored
        return None
    except DamagedEntry as exc:
        _discard(path, str(exc))
        return None
    except OSError as exc:
        reporter().notice(f"inspect cache not read ({exc.strerror or exc}): computing the report")
        return None
    try:
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("key") != key:
            raise ValueError("another format or key")
        return decode(report_class, data["report"])
    except (TypeError, KeyError, ValueError) as exc:
        _discard(path, f"is not an inspect report ({exc})")
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
        write_record(_entry(key), text.encode("utf-8"))
    except (OSError, TypeError, KeyError, ValueError) as exc:
        reporter().notice(f"inspect report not cached ({exc}): the next inspect computes it again")


# --------------------------------------------------------------------------------------------
# Dataclasses back from JSON, by their type hints


def decode(kind: Any, value: Any) -> Any:
    """VALUE (from json) as an instance of KIND, its shape checked all the way down: a dataclass from an
    object holding its fields, lists, tuples and dicts of their item types, the first option of a union
    that fits, and int, float, str, bool and None as themselves. Anything else is a TypeError or a
    KeyError (a damaged entry), never a value of the wrong type handed on."""
    if kind is Any:
        return value
    if kind is None or kind is type(None):
        if value is None:
            return None
        raise TypeError(f"{_show(value)} is not null")
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise TypeError(f"{kind.__name__} is {_show(value)}, not an object")
        fields = dataclasses.fields(kind)
        missing = [f.name for f in fields if f.init and f.name not in value]
        extra = sorted(set(value) - {f.name for f in fields})
        if missing or extra:
            raise KeyError(f"{kind.__name__} without {missing}" if missing else f"{kind.__name__} with {extra}")
        hints = _hints(kind)
        return kind(**{f.name: decode(hints[f.name], value[f.name]) for f in fields if f.init})
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            with contextlib.suppress(TypeError, KeyError):
                return decode(option, value)
        raise TypeError(f"{_show(value)} is none of {kind}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise TypeError(f"{_show(value)} is none of {args}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise TypeError(f"{_show(value)} is not a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise TypeError(f"{_show(value)} does not have {len(args)} items")
            return tuple(decode(a, v) for a, v in zip(args, value))
        items = [decode(args[0] if args else Any, v) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{_show(value)} is not an object")
        return {k: decode(args[1] if len(args) == 2 else Any, v) for k, v in value.items()}
    wanted = _SCALARS.get(kind)
    if wanted is None:
        raise TypeError(f"no way to check a {kind}")  # a new kind of field: teach decode, or the cache refuses it
    if not isinstance(value, wanted[0]) or (kind is not bool and isinstance(value, bool)):
        raise TypeError(f"{_show(value)} is not {wanted[1]}")
    return value


_SCALARS = {int: ((int,), "an integer"), float: ((int, float), "a number"), str: ((str,), "a string"),
            bool: ((bool,), "true or false")}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@lru_cache(maxsize=None)
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)
