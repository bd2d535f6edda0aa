"""llmscope's cache on disk: a root no other user can write to, and paths in it that never follow a link out.

llmscope never makes a link in its cache, so one found there was planted: it is removed (the link, never
what it points to) before anything is written or deleted under it, with one notice, and the entry is
built again. A root another user owns, or that others may write to, is refused before any work.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from llmscope.errors import LlmscopeError, UsageError, literal
from llmscope.progress import reporter

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
# Writing a file whole, and a file's sha256 remembered


def atomic_write_text(target: Path, text: str) -> None:
    """Write TARGET (a path from ``in_cache``) whole or not at all: a temporary file beside it, renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime, ctime, inode): a second load does not rehash."""
    path = path.resolve()
    st = path.stat()
    # ctime changes on every write and cannot be set back by hand, unlike mtime
    signature = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
    name = hashlib.sha256(signature.encode()).hexdigest()[:32] + ".txt"
    memo = in_cache(cache_root() / "digests" / name, kind="file", what="remembered digest",
                    redo="hashing the file again")
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
        atomic_write_text(memo, f"{hashlib.sha256(signature.encode()).hexdigest()} {value}\n")
    return value
