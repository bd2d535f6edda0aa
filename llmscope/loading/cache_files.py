"""llmscope's cache on disk: a root no other user can write to, paths in it that never follow a link out,
and entries written whole (fsynced) and served only when they read back as they were written.

Everything llmscope keeps in its cache is an *entry*. A record (an ``inspect`` answer, a file's digest,
the description of a fast tokenizer or of a converted GGUF stage) is one file whose first line holds the
sha256 and size of what follows. A folder entry (a converted GGUF stage, a fast tokenizer) is its files
plus a record listing each one's size and sha256. Reading checks all of it: a regular file, not a link,
within a size bound, digests matching. llmscope never makes a link in its cache, so one found there was
planted: it is removed (the link, never what it points to) before anything is written or deleted under
it. An entry that fails a check is never served: it is removed with one notice and built again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from llmscope.errors import LlmscopeError, UsageError, literal
from llmscope.progress import reporter

RECORD_LIMIT = 64 * 2**20  # the largest record read back (an inspect answer, module tree included, is far smaller)
_MAGIC = b"llmscope-cache-entry "
_CHUNK = 1 << 20


class DamagedEntry(ValueError):
    """A cache entry that is not as llmscope wrote it; the message says how (``is a symbolic link``)."""


# --------------------------------------------------------------------------------------------
# The root


def cache_root() -> Path:
    """``$LLMSCOPE_CACHE``, else ``$XDG_CACHE_HOME/llmscope``, else ``~/.cache/llmscope``: a folder of
    this user's that this process can write to and no other user can (created if missing; checked
    once per process and root)."""
    env = os.environ.get("LLMSCOPE_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmscope"
    if root not in _CHECKED_ROOTS:
        _check_root(root, from_env=bool(env))
        _CHECKED_ROOTS.add(root)
    return root


_CHECKED_ROOTS: set[Path] = set()


def _check_root(root: Path, *, from_env: bool) -> None:
    """Refuse, before any work, a cache root that is not a folder this process can write to (a usage
    error when LLMSCOPE_CACHE names it), or that another user owns or can write to (exit 1)."""
    where = f"LLMSCOPE_CACHE={literal(str(root))}" if from_env else f"the cache folder {literal(str(root))}"
    problem = None
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        problem = "is not a folder"
    except OSError as exc:
        problem = f"cannot be created ({exc.strerror or exc})"
    if problem is None and not root.is_dir():
        problem = "is not a folder"
    if problem is None:
        _check_not_shared(root, where)
        try:
            fd, probe = tempfile.mkstemp(dir=root, prefix=".llmscope-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            problem = f"is not writable ({exc.strerror or exc})"
    if problem is None:
        return
    if from_env:
        raise UsageError(f"{where} {problem}", hint="point LLMSCOPE_CACHE at a folder you can write to")
    raise LlmscopeError(f"{where} {problem}", hint="set LLMSCOPE_CACHE to a folder you can write to")


def _check_not_shared(root: Path, where: str) -> None:
    """Whoever can write to the root can plant what llmscope reads, or links that make it delete
    elsewhere: refuse a root another user owns, or that group or others may write to (unless it has
    the sticky bit, as /tmp, where no one may remove or rename what another user made)."""
    info = root.stat()
    user = os.geteuid() if hasattr(os, "geteuid") else None
    if user is not None and info.st_uid != user:
        raise LlmscopeError(f"{where} belongs to another user (uid {info.st_uid}), who could change what "
                            "llmscope reads from it", hint="set LLMSCOPE_CACHE to a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise LlmscopeError(f"{where} can be written by other users (mode {stat.S_IMODE(info.st_mode):04o}), "
                            "who could plant files llmscope would read or delete",
                            hint=f"chmod go-w {literal(str(root))}, or set LLMSCOPE_CACHE to another folder")


# --------------------------------------------------------------------------------------------
# Paths inside it


def _wrong(info: os.stat_result, path: Path, kind: str | None) -> str | None:
    """How PATH (its lstat INFO) is not the KIND ("file", "folder", None: either) an entry is."""
    if stat.S_ISLNK(info.st_mode):
        try:
            return f"is a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "is a symbolic link"
    if kind == "folder" and not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if kind == "file" and not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    return None


def in_cache(path: Path, kind: str | None = None, *, what: str = "cache entry",
             redo: str = "building it again") -> Path:
    """PATH, which lies under the cache root, made safe to read, write and delete: no part of it below
    the root is a symbolic link, every part above the last is a folder, and the last, when it exists,
    is a KIND ("file" or "folder"). A part that is not is removed (a link itself, never what it points
    to), with one notice (``set_aside``'s WHAT and REDO), and so is what it held: the caller builds it again."""
    root = cache_root()
    parts = path.relative_to(root).parts  # ValueError for a path outside the cache: a bug, not a user's doing
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{path} is not a plain path under {root}")
    current = root
    for depth, part in enumerate(parts):
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            break  # nothing below it either
        why = _wrong(info, current, "folder" if depth < len(parts) - 1 else kind)
        if why:
            set_aside(current, why, what=what, redo=redo)
            break
    return path


def remove(path: Path) -> None:
    """Remove PATH itself: a link or a file is unlinked, a real folder removed with all it holds (links
    inside it unlinked, never followed). Nothing there: nothing to do."""
    try:
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)  # never follows a link inside (rmtree.avoids_symlink_attacks on Linux)
        else:
            os.unlink(path)
    except FileNotFoundError:  # another process removed it first
        pass


def set_aside(path: Path, why: str, *, what: str = "cache entry", redo: str = "building it again") -> None:
    """Remove the damaged or planted entry PATH (``why`` says what is wrong with it) and say so in one
    notice; one that cannot be removed is one error line."""
    try:
        remove(path)
    except OSError as exc:
        raise LlmscopeError(f"the {what} {literal(str(path))} {why}, and it cannot be removed "
                            f"({exc.strerror or exc})", hint="remove it by hand, or set LLMSCOPE_CACHE "
                            "to another folder") from None
    link = " (the link itself, not what it points to)" if why.startswith("is a symbolic link") else ""
    reporter().notice(f"{what} not used: {path} {why}; removed it{link}, {redo}")


# --------------------------------------------------------------------------------------------
# Records: one file, its digest on its first line


def _fsync(path: Path) -> None:
    """Flush PATH (a file or a folder: a rename is on disk once its folder is) to the disk."""
    folder = path.is_dir()
    if folder and os.name == "nt":  # a folder cannot be opened to flush it there
        return
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # a filesystem without fsync of folders
            raise
    finally:
        os.close(fd)


def replace_synced(tmp: Path, target: Path) -> None:
    """Rename the finished file TMP onto TARGET: TMP's bytes on disk first, the rename after."""
    _fsync(tmp)
    os.replace(tmp, target)
    _fsync(target.parent)


def write_record(target: Path, payload: bytes) -> None:
    """Write the record TARGET (a path from ``in_cache``) whole or not at all: a first line with the
    sha256 and size of PAYLOAD, then PAYLOAD, in a temporary file beside it, renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    header = _MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(header + payload)
        replace_synced(Path(tmp), target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_record(path: Path, limit: int = RECORD_LIMIT) -> bytes:
    """The payload of the record PATH, if PATH is a regular file (not a link, a device or a pipe) of at
    most LIMIT bytes whose first line's sha256 and size match what follows. FileNotFoundError when
    there is none; DamagedEntry when it is not as written."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DamagedEntry(_wrong(os.lstat(path), path, "file") or "is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise DamagedEntry("is not a regular file")
        if info.st_size > limit:
            raise DamagedEntry(f"is larger than {limit:,} bytes")
        data = handle.read(limit + 1)
    if not data:
        raise DamagedEntry("is empty")
    end = data.find(b"\n", 0, 200)
    if not data.startswith(_MAGIC) or end < 0:
        raise DamagedEntry("is not a record llmscope wrote")
    try:
        fields = dict(item.split("=", 1) for item in data[len(_MAGIC):end].decode("ascii").split())
        digest, size = fields["sha256"], int(fields["bytes"])
    except (UnicodeDecodeError, ValueError, KeyError):
        raise DamagedEntry("has a damaged first line") from None
    payload = data[end + 1:]
    if len(payload) != size:
        raise DamagedEntry(f"holds {len(payload):,} bytes instead of {size:,} (cut short or added to)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise DamagedEntry("does not match its sha256")
    return payload


def write_json(target: Path, document: Any) -> None:
    """``write_record`` of DOCUMENT as JSON."""
    write_record(target, json.dumps(document, ensure_ascii=False).encode("utf-8"))


def read_json(path: Path, limit: int = RECORD_LIMIT) -> Any:
    """``read_record`` of a JSON document."""
    payload = read_record(path, limit)
    try:
        return json.loads(payload.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one
        raise DamagedEntry(f"does not hold JSON ({exc})") from None


# --------------------------------------------------------------------------------------------
# Folder entries: files, and a record of each one's size and sha256


def _files(folder: Path) -> dict[str, os.stat_result]:
    """Every entry under FOLDER by its relative name, links and special files included (not followed)."""
    found: dict[str, os.stat_result] = {}
    for current, folders, names in os.walk(folder):
        for name in [*folders, *names]:
            path = Path(current) / name
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                found[path.relative_to(folder).as_posix()] = info
    return found


def publish_folder(tmp: Path, final: Path, record: dict[str, Any], marker: str) -> None:
    """Finish the folder entry TMP and rename it to FINAL: RECORD, with the size and sha256 of every
    file TMP holds, is written into it as MARKER, and every file is on disk before the rename (a crash
    never leaves an entry whose files are not). FileExistsError when FINAL is there already."""
    files: dict[str, list[Any]] = {}
    for name, info in sorted(_files(tmp).items()):
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{name} in {tmp} is not a regular file")
        files[name] = [info.st_size, file_sha256(tmp / name)]
        _fsync(tmp / name)
    write_json(tmp / marker, {**record, "files": files})
    try:
        os.replace(tmp, final)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise FileExistsError(exc.errno, f"{final} is there already") from None
        raise
    _fsync(final.parent)


def read_folder(folder: Path, marker: str) -> dict[str, Any]:
    """The record of the folder entry FOLDER, once it is a real folder (not a link) holding exactly the
    files its MARKER lists, each a regular file of its size and sha256. FileNotFoundError when there
    is no entry; DamagedEntry when it is not as written."""
    info = os.lstat(folder)
    why = _wrong(info, folder, "folder")
    if why:
        raise DamagedEntry(why)
    try:
        record = read_json(folder / marker)
    except FileNotFoundError:
        raise DamagedEntry(f"has no {marker} (it was never finished)") from None
    except DamagedEntry as exc:
        raise DamagedEntry(f"has a {marker} that {exc}") from None
    listed = record.get("files") if isinstance(record, dict) else None
    if not isinstance(listed, dict):
        raise DamagedEntry(f"has a {marker} of another shape")
    found = _files(folder)
    found.pop(marker, None)
    if set(found) != set(listed):
        raise DamagedEntry(f"holds other files than its {marker} lists")
    for name, info in found.items():
        try:
            size, digest = listed[name]
        except (TypeError, ValueError):
            raise DamagedEntry(f"has a {marker} of another shape") from None
        if not stat.S_ISREG(info.st_mode):
            raise DamagedEntry(f"holds {name}, which {_wrong(info, folder / name, 'file')}")
        if info.st_size != size or file_sha256(folder / name) != digest:
            raise DamagedEntry(f"holds {name}, which is not the file it lists (changed, cut short or replaced)")
    return record


# --------------------------------------------------------------------------------------------
# A file's sha256, remembered per version of the file


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in the cache per version of the file: its device, inode, size,
    mtime and ctime (which changes on every write and cannot be set back by hand), so a second load
    does not rehash it, and a rename (of the file or its folder) keeps what was remembered."""
    info = os.stat(path)
    signature = f"{info.st_dev}|{info.st_ino}|{info.st_size}|{info.st_mtime_ns}|{info.st_ctime_ns}"
    said = {"what": "remembered digest", "redo": "hashing the file again"}
    name = f"{hashlib.sha256(signature.encode()).hexdigest()[:32]}.sha256"
    memo = in_cache(cache_root() / "digests" / name, kind="file", **said)
    try:
        stored = read_json(memo, limit=4096)
        if isinstance(stored, dict) and stored.get("signature") == signature and isinstance(stored.get("sha256"), str):
            return stored["sha256"]
    except FileNotFoundError:
        pass
    except DamagedEntry as exc:
        set_aside(memo, str(exc), **said)
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        write_json(memo, {"signature": signature, "sha256": value})
    return value
