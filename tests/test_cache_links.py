"""Issue 34, item 1: nothing outside llmscope's cache is written or deleted through it.

A symbolic link planted in the cache (``gguf/<key>`` pointing at another folder, a lock file pointing at
someone's file) is removed, the link itself, and the entry built again; what it pointed to is untouched.
A cache root that another user owns, or that others may write to, is refused in one line (exit 1).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

RUNTIME = 1


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own (the session's is shared by every test)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LLMSCOPE_CACHE", str(root))
    return root


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every path under FOLDER with its bytes (a link: where it points), to compare before and after."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name] = "folder"
    return found


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the cache holding what a conversion would write or delete there: a sentinel,
    a ``config`` folder (the name of a stage) and a ``.config.tmp-`` leftover (what is cleaned up)."""
    folder = tmp_path / "elsewhere"
    (folder / "config").mkdir(parents=True)
    (folder / "sentinel.txt").write_text("keep me\n")
    (folder / "config" / "sentinel.txt").write_text("keep me too\n")
    (folder / ".config.tmp-dead").mkdir()
    (folder / ".config.tmp-dead" / "sentinel.txt").write_text("and me\n")
    return folder


def gguf_entry(tiny_gguf: Path) -> Path:
    """The cache folder of the tiny GGUF's conversion (``gguf/<key>``), as llmscope names it."""
    from llmscope.loading.gguf_cache import gguf_file_for
    from llmscope.loading.resolve import resolve

    return gguf_file_for(resolve(str(tiny_gguf))).entry


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_planted_link_for_a_gguf_entry_is_removed_not_followed(cli, cache, elsewhere, tiny_gguf):
    entry = gguf_entry(tiny_gguf)
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)

    result = cli("inspect", str(tiny_gguf), "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["model_type"] == "llama" and result.json()["num_hidden_layers"] == 2
    assert snapshot(elsewhere) == before  # nothing deleted there, nothing written there
    assert not entry.is_symlink() and (entry / "config").is_dir()  # rebuilt inside the cache
    said = notices(result.stderr)
    assert len(said) == 1 and "is a symbolic link" in said[0] and "not what it points to" in said[0], said
    again = cli("inspect", str(tiny_gguf), "--json")
    assert again.exit_code == 0 and again.stderr == ""


def test_a_planted_link_for_a_lock_file_is_removed_not_truncated(cli, cache, tmp_path, tiny_gguf):
    """filelock opens its lock file for writing, truncating it: through a link, someone's file."""
    precious = tmp_path / "precious.txt"
    precious.write_text("a file of the user's\n")
    entry = gguf_entry(tiny_gguf)
    entry.mkdir(parents=True)
    (entry / "config.lock").symlink_to(precious)

    result = cli("inspect", str(tiny_gguf), "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["num_hidden_layers"] == 2
    assert precious.read_text() == "a file of the user's\n"
    assert not (entry / "config.lock").is_symlink()
    assert len(notices(result.stderr)) == 1


@pytest.mark.parametrize("part", ["gguf", "inspect", "digests"])
def test_a_planted_link_for_a_cache_folder_gets_nothing_written_through_it(cli, cache, elsewhere, tiny_gguf, part):
    """``gguf/``, ``inspect/`` and ``digests/`` pointing elsewhere: the entries land in the cache itself."""
    cache.mkdir()
    (cache / part).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)

    result = cli("inspect", str(tiny_gguf), "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["num_hidden_layers"] == 2
    assert snapshot(elsewhere) == before
    assert (cache / part).is_dir() and not (cache / part).is_symlink() and any((cache / part).iterdir())
    assert len(notices(result.stderr)) == 1, result.stderr


def test_a_planted_link_for_the_tokenizer_cache_gets_nothing_written_through_it(cli, cache, elsewhere, tiny_models,
                                                                                 hf_tokenizers):
    cache.mkdir()
    (cache / "tokenizers").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)

    result = cli("tokenize", "The cat sat", "-m", str(tiny_models["llama"]), "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["ids"] == hf_tokenizers["llama"]("The cat sat")["input_ids"]
    assert snapshot(elsewhere) == before
    assert any((cache / "tokenizers").iterdir()) and not (cache / "tokenizers").is_symlink()


# --------------------------------------------------------------------------------------------
# The root


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=["0777", "0775", "0757"])
def test_a_cache_root_others_can_write_to_is_refused(cli, one_error_line, cache, config_folder, mode):
    cache.mkdir()
    cache.chmod(mode)
    line = one_error_line(cli("inspect", str(config_folder("gpt2")), "--json"), RUNTIME)
    assert str(cache) in line and "can be written by other users" in line
    assert f"chmod go-w {cache}" in line and "LLMSCOPE_CACHE" in line
    assert list(cache.iterdir()) == []  # refused before anything was written


def test_a_sticky_shared_root_is_accepted(cli, cache, config_folder):
    """/tmp's kind (mode 1777): nobody may remove or rename what another user made in it."""
    cache.mkdir()
    cache.chmod(0o1777)
    result = cli("inspect", str(config_folder("gpt2")), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["num_hidden_layers"] == 12


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a folder away needs root")
def test_a_cache_root_of_another_user_is_refused(cli, one_error_line, cache, config_folder):
    cache.mkdir()
    os.chown(cache, 65534, 65534)  # nobody
    line = one_error_line(cli("inspect", str(config_folder("gpt2")), "--json"), RUNTIME)
    assert str(cache) in line and "belongs to another user (uid 65534)" in line and "LLMSCOPE_CACHE" in line


def test_a_cache_root_llmscope_creates_is_its_own(cli, tmp_path, monkeypatch, config_folder):
    """Created with mode 0700 whatever the umask, so that a umask of 002 does not make it refuse itself."""
    root = tmp_path / "new" / "cache"
    monkeypatch.setenv("LLMSCOPE_CACHE", str(root))
    old = os.umask(0o002)
    try:
        result = cli("inspect", str(config_folder("gpt2")), "--json")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0


def test_a_shared_default_root_is_refused_in_a_real_process(tmp_path, config_folder):
    """The default root ($XDG_CACHE_HOME/llmscope), not LLMSCOPE_CACHE: the same refusal, exit 1."""
    import subprocess

    (tmp_path / "xdg" / "llmscope").mkdir(parents=True)
    (tmp_path / "xdg" / "llmscope").chmod(0o777)
    env = {k: v for k, v in os.environ.items() if k != "LLMSCOPE_CACHE"} | {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([sys.executable, "-m", "llmscope", "inspect", str(config_folder("gpt2")), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == RUNTIME and len(errors) == 1 and done.stdout == "", done.stderr
    assert "the cache folder" in errors[0] and "can be written by other users" in errors[0]
