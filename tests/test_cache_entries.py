"""Issue 34, item 6: a cache entry is served only as llmscope wrote it.

Each damage is planted by hand in a cache of the test's own, as a full disk, a crash, another program
or a person could leave it: a fast tokenizer's tokenizer.json replaced by another valid one, emptied,
cut short or made a link to /dev/zero; an inspect record that is a list, a string, lacks a key or holds
a value of the wrong type; a GGUF stage that is a file or a link. Every run still answers right (exit
0), says so in at most one notice, never ends in "this is a bug in llmscope", and the next run is quiet.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEXT = "The cat sat on the mat. naïve café"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LLMSCOPE_CACHE", str(root))
    return root


def run_capped(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``llmscope ARGS`` in a subprocess with at most 4 GiB of address space: a cache file read whole
    from /dev/zero fails fast instead of eating the machine."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    return subprocess.run([sys.executable, "-m", "llmscope", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), preexec_fn=cap, timeout=timeout)


def talk(stderr: str) -> list[str]:
    """What a run said on stderr, but the conversion's own progress line (``Converting ... (once; cached)``)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("Converting ")]


def assert_recovered(exit_code: int, stderr: str, what: str) -> None:
    """Exit 0, no error line, exactly one notice and it names WHAT (the entry set aside)."""
    said = talk(stderr)
    assert exit_code == 0, stderr
    assert "bug in llmscope" not in stderr and not any(line.startswith("Error:") for line in said), stderr
    assert len(said) == 1 and what in said[0] and "not used" in said[0], said


# --------------------------------------------------------------------------------------------
# The fast tokenizer's entry


@pytest.fixture
def llama(tiny_models, tmp_path) -> Path:
    folder = tmp_path / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    return folder


def tokenizer_entry(cli, folder: Path, cache: Path) -> Path:
    """The fast-tokenizer entry of FOLDER, after a first tokenize wrote it and a second read it."""
    for _ in range(2):
        result = cli("tokenize", TEXT, "-m", str(folder), "--json")
        assert result.exit_code == 0 and result.stderr == "", result.stderr
    (entry,) = (cache / "tokenizers").iterdir()
    assert (entry / "tokenizer.json").is_file()
    return entry


def want_ids(folder: Path) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)(TEXT)["input_ids"]


def _different(entry: Path, tiny_models) -> None:  # valid, but BERT's WordPiece: other ids altogether
    shutil.copy(tiny_models["bert"] / "tokenizer.json", entry / "tokenizer.json")


def _empty(entry: Path, tiny_models) -> None:
    (entry / "tokenizer.json").write_bytes(b"")


def _truncated(entry: Path, tiny_models) -> None:
    data = (entry / "tokenizer.json").read_bytes()
    (entry / "tokenizer.json").write_bytes(data[: len(data) // 2])


def _extra_file(entry: Path, tiny_models) -> None:
    (entry / "tokenizer_config.json").write_text("{}")


def _record_a_list(entry: Path, tiny_models) -> None:
    (entry / "llmscope-tokenizer.json").write_text("[]")


@pytest.mark.parametrize("damage", [_different, _empty, _truncated, _extra_file, _record_a_list],
                         ids=["another-valid-tokenizer", "empty", "cut-short", "a-file-added", "record-a-list"])
def test_a_damaged_tokenizer_entry_is_rebuilt(cli, cache, llama, tiny_models, damage):
    entry = tokenizer_entry(cli, llama, cache)
    damage(entry, tiny_models)
    result = cli("tokenize", TEXT, "-m", str(llama), "--json")
    assert_recovered(result.exit_code, result.stderr, "tokenizer cache entry")
    assert result.json()["ids"] == want_ids(llama)
    again = cli("tokenize", TEXT, "-m", str(llama), "--json")  # rebuilt whole: the fast path, quietly
    assert again.exit_code == 0 and again.stderr == "" and again.json()["ids"] == want_ids(llama)


def test_a_tokenizer_entry_linked_to_dev_zero_is_not_read(cli, cache, llama):
    entry = tokenizer_entry(cli, llama, cache)
    (entry / "tokenizer.json").unlink()
    (entry / "tokenizer.json").symlink_to("/dev/zero")
    done = run_capped("tokenize", TEXT, "-m", llama, "--json")
    assert_recovered(done.returncode, done.stderr, "tokenizer cache entry")
    assert json.loads(done.stdout)["ids"] == want_ids(llama)
    assert Path("/dev/zero").exists()  # the link went, not what it pointed to


# --------------------------------------------------------------------------------------------
# inspect's records


def inspect_entry(cli, folder: Path, cache: Path) -> Path:
    result = cli("inspect", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    (entry,) = (cache / "inspect").glob("*.json")
    return entry


def _framed(document) -> bytes:
    """What llmscope's own writer would write: a record whose digest matches, whatever its shape."""
    payload = json.dumps(document).encode()
    return f"llmscope-cache-entry sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode() + payload


def _record(entry: Path) -> dict:
    data = entry.read_bytes()
    return json.loads(data[data.index(b"\n") + 1:])


def _without_key(entry: Path) -> bytes:
    record = _record(entry)
    del record["report"]["num_hidden_layers"]
    return _framed(record)


def _wrong_type(entry: Path) -> bytes:  # formatting "twelve" as a number was the bug
    record = _record(entry)
    record["report"]["num_hidden_layers"] = "twelve"
    return _framed(record)


INSPECT_DAMAGES = {
    "a-list": lambda entry: _framed([]),
    "a-string": lambda entry: _framed("a string"),
    "report-a-list": lambda entry: _framed({**_record(entry), "report": []}),
    "without-a-key": _without_key,
    "a-value-of-the-wrong-type": _wrong_type,
    "plain-json-list": lambda entry: b"[]",
    "empty": lambda entry: b"",
    "cut-short": lambda entry: entry.read_bytes()[:-100],
    "a-byte-changed": lambda entry: entry.read_bytes().replace(b'"num_hidden_layers": 12', b'"num_hidden_layers": 13'),
}


@pytest.mark.parametrize("damage", INSPECT_DAMAGES.values(), ids=INSPECT_DAMAGES.keys())
@pytest.mark.parametrize("json_", [True, False], ids=["json", "table"])
def test_a_damaged_inspect_record_is_recomputed(cli, cache, config_folder, damage, json_):
    folder = config_folder("gpt2")
    entry = inspect_entry(cli, folder, cache)
    entry.write_bytes(damage(entry))
    args = ("inspect", str(folder), *(["--json"] if json_ else []))
    result = cli(*args)
    assert_recovered(result.exit_code, result.stderr, "inspect cache entry")
    if json_:
        assert result.json()["num_hidden_layers"] == 12
    else:
        assert "12" in result.stdout
    again = cli(*args)
    assert again.exit_code == 0 and again.stderr == "" and again.stdout == result.stdout


def test_an_inspect_record_linked_to_dev_zero_is_not_read(cache, config_folder):
    folder = config_folder("gpt2")
    assert run_capped("inspect", folder, "--json").returncode == 0  # the key holds llmscope's code: a process's own
    (entry,) = (cache / "inspect").glob("*.json")
    entry.unlink()
    entry.symlink_to("/dev/zero")
    done = run_capped("inspect", folder, "--json")
    assert_recovered(done.returncode, done.stderr, "inspect cache entry")
    assert json.loads(done.stdout)["num_hidden_layers"] == 12
    assert entry.is_file() and not entry.is_symlink()


def test_a_remembered_digest_linked_to_dev_zero_is_not_read(cli, cache, config_folder):
    """The digest memo of the config.json (what the inspect key is made of)."""
    folder = config_folder("gpt2")
    inspect_entry(cli, folder, cache)
    digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    (memo,) = [p for p in (cache / "digests").iterdir() if digest.encode() in p.read_bytes()]
    memo.unlink()
    memo.symlink_to("/dev/zero")
    done = run_capped("inspect", folder, "--json")
    assert_recovered(done.returncode, done.stderr, "remembered digest")
    assert json.loads(done.stdout)["num_hidden_layers"] == 12


# --------------------------------------------------------------------------------------------
# GGUF stages


def gguf_stage(tiny_gguf: Path, stage: str) -> Path:
    from llmscope.loading.gguf_cache import gguf_file_for
    from llmscope.loading.resolve import resolve

    return gguf_file_for(resolve(str(tiny_gguf))).stage(stage)


def _stage_a_file(stage: Path, tmp_path: Path) -> None:
    shutil.rmtree(stage)
    stage.write_text("not a folder")


def _stage_a_link(stage: Path, tmp_path: Path) -> None:
    """A link to a folder that looks like a finished stage of the older layout: another model's config."""
    fake = tmp_path / "fake-stage"
    shutil.copytree(stage, fake)
    config = json.loads((fake / "config.json").read_text())
    config["num_hidden_layers"] = 7
    (fake / "config.json").write_text(json.dumps(config))
    (fake / "llmscope-cache.json").write_text(json.dumps({"sha256": "", "stage": "config"}))
    shutil.rmtree(stage)
    stage.symlink_to(fake, target_is_directory=True)


def _config_changed(stage: Path, tmp_path: Path) -> None:
    config = json.loads((stage / "config.json").read_text())
    config["num_hidden_layers"] = 7
    (stage / "config.json").write_text(json.dumps(config))


def _marker_removed(stage: Path, tmp_path: Path) -> None:
    (stage / "llmscope-cache.json").unlink()


STAGE_DAMAGES = {"a-file": _stage_a_file, "a-link": _stage_a_link, "config-changed": _config_changed,
                 "never-finished": _marker_removed}


@pytest.mark.parametrize("damage", STAGE_DAMAGES.values(), ids=STAGE_DAMAGES.keys())
def test_a_damaged_gguf_stage_is_converted_again(cli, cache, tiny_gguf, tmp_path, damage):
    first = cli("inspect", str(tiny_gguf), "--json")
    assert first.exit_code == 0, first.stderr
    stage = gguf_stage(tiny_gguf, "config")
    damage(stage, tmp_path)
    shutil.rmtree(cache / "inspect")  # not answered from inspect's own cache: read the stage again
    outside = {p.name: p.read_bytes() for p in (tmp_path / "fake-stage").iterdir()} if stage.is_symlink() else None
    result = cli("inspect", str(tiny_gguf), "--json")
    assert_recovered(result.exit_code, result.stderr, "converted GGUF stage (config)")
    assert result.json() == first.json() and result.json()["num_hidden_layers"] == 2
    assert stage.is_dir() and not stage.is_symlink()
    if outside is not None:  # what the link pointed to is untouched
        assert {p.name: p.read_bytes() for p in (tmp_path / "fake-stage").iterdir()} == outside


def test_a_damaged_tokenizer_stage_is_converted_again(cli, cache, tiny_gguf):
    from transformers import AutoTokenizer

    assert cli("tokenize", TEXT, "-m", str(tiny_gguf)).exit_code == 0
    stage = gguf_stage(tiny_gguf, "tokenizer")
    data = (stage / "tokenizer.json").read_bytes()
    (stage / "tokenizer.json").write_bytes(data[: len(data) // 3])
    result = cli("tokenize", TEXT, "-m", str(tiny_gguf), "--json")
    assert_recovered(result.exit_code, result.stderr, "converted GGUF stage (tokenizer)")
    reference = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    assert result.json()["ids"] == reference(TEXT)["input_ids"]


# --------------------------------------------------------------------------------------------
# On disk before the rename


def test_every_entry_is_on_disk_before_it_is_renamed_into_place(cli, cache, tiny_gguf, llama, monkeypatch):
    """Each rename into the cache comes after an fsync of what is renamed (a file, or a folder's files
    and the folder), and is followed by an fsync of the folder it lands in."""
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def logged_replace(src, dst, **kwargs) -> None:
        events.append(("replace", f"{os.path.realpath(src)} -> {os.path.realpath(dst)}"))
        replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(os, "replace", logged_replace)
    assert cli("inspect", str(tiny_gguf), "--json").exit_code == 0
    assert cli("tokenize", TEXT, "-m", str(llama), "--json").exit_code == 0
    real = os.path.realpath(cache)
    renames = [(i, detail.split(" -> ")) for i, (kind, detail) in enumerate(events) if kind == "replace"
               and detail.split(" -> ")[1].startswith(real)]
    assert len(renames) >= 4, events  # digests, the config stage, the inspect record, the tokenizer entry
    renamed = {target for _, (_, target) in renames}
    for index, (source, target) in renames:
        synced = {path for kind, path in events[:index] if kind == "fsync"}
        assert source in synced, f"{source} renamed before it was fsynced"
        if os.path.isdir(target):  # each file in it fsynced (or renamed into it, checked as its own rename)
            files = [str(p).replace(target, source, 1) for p in Path(target).rglob("*") if p.is_file()]
            unsynced = [f for f in files if f not in synced and f not in renamed]
            assert not unsynced, f"{unsynced} renamed into place before they were fsynced"
        assert ("fsync", os.path.dirname(target)) in events[index + 1:], f"{target}'s folder not fsynced after"
