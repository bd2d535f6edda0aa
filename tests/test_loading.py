"""The loader: the GGUF conversion cache, devices and dtypes, and what it refuses to run."""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

import llmscope
from llmscope import loading
from llmscope.loading import devices
from llmscope.loading import gguf_cache
from llmscope.loading import hub
from llmscope.loading import ram_guard
from llmscope.errors import DeviceError, ModelFormatError, RemoteCodeError, UsageError
from llmscope.progress import Reporter, set_reporter
from llmscope.loading.resolve import ModelSource, resolve


@pytest.fixture
def notices():
    """The lines the core says through its reporter while the test runs (the CLI would show them)."""

    class Collect(Reporter):
        def notice(self, text: str) -> None:
            said.append(text)

    said: list[str] = []
    old = set_reporter(Collect())
    yield said
    set_reporter(old)


# --------------------------------------------------------------------------------------------
# The cache's key and its atomic stages (fault injection on the real mechanism)


def test_changed_file_gets_a_new_key_even_with_the_same_size_and_mtime(tmp_path: Path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"A" * 1000)
    first = gguf_cache.file_sha256(path)
    assert gguf_cache.file_sha256(path) == first  # memoised
    stat = path.stat()
    path.write_bytes(b"B" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert gguf_cache.file_sha256(path) != first


def _gguf(tmp_path: Path) -> tuple[gguf_cache.GgufFile, ModelSource]:
    path = tmp_path / "x.gguf"
    path.write_bytes(os.urandom(64))
    source = ModelSource(kind="gguf", location=str(tmp_path), gguf_file="x.gguf")
    return gguf_cache.GgufFile(path, gguf_cache.file_sha256(path)), source


def test_killed_conversion_leaves_no_cache(tmp_path: Path, monkeypatch):
    gguf, source = _gguf(tmp_path)

    def dies_half_way(g, stage, out):
        (out / "config.json").write_text("{half")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_cache, "_convert_stage", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        gguf_cache.ensure_gguf_stage(gguf, "config", source)
    assert not gguf.stage("config").exists()
    assert not list(gguf.entry.glob(".config.tmp-*"))

    monkeypatch.setattr(gguf_cache, "_convert_stage", lambda g, s, out: (out / "config.json").write_text("{}"))
    folder = gguf_cache.ensure_gguf_stage(gguf, "config", source)
    assert json.loads((folder / "config.json").read_text()) == {}


def test_leftovers_of_a_dead_process_and_foreign_folders_are_never_served(tmp_path: Path, monkeypatch):
    gguf, source = _gguf(tmp_path)
    stale = gguf.entry / ".config.tmp-dead"
    stale.mkdir(parents=True)
    gguf.stage("config").mkdir()
    (gguf.stage("config") / "config.json").write_text('{"wrong": true}')  # no marker: incomplete
    monkeypatch.setattr(gguf_cache, "_convert_stage", lambda g, s, out: (out / "config.json").write_text('{"ok": 1}'))
    folder = gguf_cache.ensure_gguf_stage(gguf, "config", source)
    assert json.loads((folder / "config.json").read_text()) == {"ok": 1}
    assert not stale.exists()


def test_two_converters_at_once_convert_once(tmp_path: Path, monkeypatch):
    gguf, source = _gguf(tmp_path)
    calls = []

    def slow(g, stage, out):
        calls.append(stage)
        time.sleep(0.5)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf_cache, "_convert_stage", slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(gguf_cache.ensure_gguf_stage(gguf, "config", source)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["config"] and len(set(results)) == 1


def test_full_disk_ends_with_no_cache_and_a_clear_error(tmp_path: Path, monkeypatch):
    import errno

    gguf, source = _gguf(tmp_path)

    def disk_full(g, stage, out):
        (out / "model.safetensors").write_bytes(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf_cache, "_convert_stage", disk_full)
    with pytest.raises(llmscope.LlmscopeError, match="no space left"):
        gguf_cache.ensure_gguf_stage(gguf, "model", source)
    assert not gguf.stage("model").exists() and not list(gguf.entry.glob(".model.tmp-*"))


# --------------------------------------------------------------------------------------------
# Devices, dtypes, safety


def test_device_and_dtype_names():
    assert devices.validate_device("CUDA:1") == "cuda:1"
    assert devices.validate_dtype("bf16") == "bfloat16"
    with pytest.raises(UsageError):
        devices.validate_device("gpu")
    with pytest.raises(UsageError):
        devices.validate_dtype("int3")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        devices.resolve_device("cuda")
    with pytest.raises(DeviceError, match=r"^device=cuda:1: no CUDA GPU .*\(use device=cpu \(or auto\)\)$"):
        devices.resolve_device("cuda:1")


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_cuda_load_matches_cpu(tiny_models, dtype):
    import torch

    cpu = llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="float32")
    gpu = llmscope.load(str(tiny_models["llama"]), device="cuda", dtype=dtype)
    assert gpu.device == "cuda:0" and gpu.model.dtype == getattr(torch, dtype)
    ids = torch.tensor([[1, 5, 9, 12]])
    a = cpu.model(ids).logits
    b = gpu.model(ids.to("cuda")).logits.float().cpu()
    assert torch.allclose(a, b, atol=1e-4 if dtype == "float32" else 5e-2)


def test_auto_dtype_is_float32_on_cpu_and_explicit_dtype_is_used(tiny_models):
    import torch

    auto = llmscope.load(str(tiny_models["gpt2"]), device="cpu")
    assert auto.model.dtype == torch.float32 and auto.device == "cpu"
    half = llmscope.load(str(tiny_models["gpt2"]), device="cpu", dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16 and half.dtype == "bfloat16"


def test_repository_code_is_never_run_without_the_flag(tmp_path: Path):
    marker = tmp_path / "ran.txt"
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "evil-model",
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.Evil"},
    }))
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import PretrainedConfig\n" \
           "class EvilConfig(PretrainedConfig):\n    model_type = 'evil-model'\n"
    (tmp_path / "configuration_evil.py").write_text(code)
    with pytest.raises(RemoteCodeError) as info:
        llmscope.inspect_model(str(tmp_path))
    assert "trust_remote_code=True" in str(info.value)
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_checkpoint_cannot_run_code(tmp_path: Path, tiny_models):
    marker = tmp_path / "pwned"
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_models["gpt2"] / name).read_bytes())
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"transformer.wte.weight": _Payload(str(marker))}, handle)
    with pytest.raises(ModelFormatError):
        llmscope.load(str(folder), device="cpu")
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# A user's own GGUF file (the tiny one conftest writes with the gguf package)


def test_a_gguf_loads_to_the_same_numbers_as_transformers_reading_it(tiny_gguf):
    """F16 and Q8_0 tensors dequantized, cached, reloaded: same logits as transformers' own GGUF load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = llmscope.load(str(tiny_gguf), device="cpu", dtype="float32")
    assert lm.source.kind == "gguf" and lm.config.model_type == "llama" and lm.config.num_key_value_heads == 2
    direct = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    text = "the cat sat on the mat"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    assert lm.tokenizer(text)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, lm.model(ids).logits)


def test_a_cached_gguf_tokenizer_has_the_same_added_tokens(tiny_gguf):
    """The cache records the added tokens in tokenizer_config.json (so loads skip re-parsing
    tokenizer.json); the tokenizer read from it matches transformers' own GGUF conversion."""
    from transformers import AutoTokenizer

    direct = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    source = resolve(str(tiny_gguf))
    cached = loading.load_tokenizer(source)
    folder = gguf_cache.ensure_gguf_stage(gguf_cache.gguf_file_for(source), "tokenizer", source)
    recorded = json.loads((folder / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert {int(i): t["content"] for i, t in recorded.items()} == {
        i: t.content for i, t in direct.added_tokens_decoder.items()}
    assert cached.added_tokens_decoder == direct.added_tokens_decoder
    assert type(cached) is type(direct) and cached.all_special_tokens == direct.all_special_tokens
    for text in ("<s>the cat</s>", "<|user|>sat on<|assistant|> the mat</s>", "plain text"):
        assert cached(text)["input_ids"] == direct(text)["input_ids"]
        assert cached.decode(cached(text)["input_ids"]) == direct.decode(direct(text)["input_ids"])


def test_a_gguf_chat_template_is_kept(tiny_gguf):
    from conftest import GGUF_CHAT_TEMPLATE

    assert loading.load_tokenizer(resolve(str(tiny_gguf))).chat_template == GGUF_CHAT_TEMPLATE
    result = llmscope.tokenize("hello", model=str(tiny_gguf), chat=True)
    assert result.text == "<|user|>hello</s><|assistant|>"
    assert result.messages == ({"role": "user", "content": "hello"},)


def _summary_by_gguf_reader(path: Path) -> dict:
    """The same summary, computed here with gguf's GGUFReader (the reference reader)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    types: dict = {}
    for t in reader.tensors:
        entry = types.setdefault(t.tensor_type.name, {"tensors": 0, "elements": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["elements"] += int(t.n_elements)
        entry["bytes"] += int(t.n_bytes)
    file_type = gguf.LlamaFileType(int(reader.fields["general.file_type"].contents())).name.removeprefix("MOSTLY_")
    return {"file_type": file_type, "file_bytes": path.stat().st_size, "types": types}


@pytest.mark.parametrize("processes", ["available", "unavailable"])
def test_gguf_summary_from_the_cache_matches_gguf_reader(tiny_gguf, processes, tmp_path, monkeypatch):
    """Computed in a second process during the config stage (or in turn where a sandbox allows no
    processes), cached: the same as reading it here."""
    import multiprocessing

    monkeypatch.setenv("LLMSCOPE_CACHE", str(tmp_path / "cache"))  # a fresh conversion
    if processes == "unavailable":
        def no_pool(self, *args, **kwargs):
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(type(multiprocessing.get_context("spawn")), "Pool", no_pool)
    want = _summary_by_gguf_reader(tiny_gguf)
    assert set(want["types"]) == {"F32", "F16", "Q8_0"} and want["file_type"] == "Q8_0"
    assert gguf_cache.gguf_summary(resolve(str(tiny_gguf))) == want


# --------------------------------------------------------------------------------------------
# The real embedded model


@pytest.mark.slow
def test_second_load_reads_the_cache_without_converting(monkeypatch):
    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again")

    # The first load, in this test's cache (demo_model, a session fixture, is built before the
    # test's LLMSCOPE_CACHE is set, so it may have used another cache).
    llmscope.load(None, device="cpu", dtype="float32")
    monkeypatch.setattr(gguf_cache, "_convert_stage", must_not_convert)
    again = llmscope.load(None, device="cpu", dtype="float32")
    assert sum(p.numel() for p in again.model.parameters()) == 268_098_176
    assert resolve(None).kind == "embedded"


@pytest.mark.slow
def test_converted_cache_gives_the_same_logits_as_transformers_reading_the_gguf(demo_model):
    """The cache is faithful: same numbers as transformers' own GGUF loading of the same file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_cache.embedded_gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    text = "The cat sat on the mat because it was tired."
    assert demo_model.tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, demo_model.model(ids).logits)


def test_weights_that_cannot_fit_are_refused_before_loading(tiny_models, monkeypatch):
    """A machine with less free RAM than the weights: a clear refusal naming a dtype that fits."""
    from llmscope.errors import ResourceError

    config = loading.load_config(resolve(str(tiny_models["llama"])))
    weight_bytes = 4 * sum(p.numel() for p in loading.build_meta_model(config).parameters())
    monkeypatch.setattr(ram_guard, "available_ram", lambda: int(weight_bytes * 0.8))
    with pytest.raises(ResourceError) as info:
        llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="float32")
    assert "dtype=bfloat16" in str(info.value)
    assert llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="bfloat16").dtype == "bfloat16"


@pytest.mark.slow
def test_two_processes_converting_the_same_gguf_convert_it_once(tmp_path: Path):
    """Two real processes race on a fresh cache: one converts, the other waits and reads its result."""
    import subprocess
    import sys

    gguf_path = gguf_cache.embedded_gguf_path()  # the real 270M GGUF, assembled in the session cache
    code = (
        "from llmscope.loading import gguf_cache; from llmscope.loading.resolve import resolve; import sys\n"
        "from llmscope.progress import set_reporter; from llmscope.render.progress import RichReporter\n"
        "set_reporter(RichReporter())  # as the CLI does\n"
        "convert = gguf_cache._convert_stage  # say on stderr who really converts\n"
        "def counted(*a, **k):\n    print('CONVERTING', file=sys.stderr); return convert(*a, **k)\n"
        "gguf_cache._convert_stage = counted\n"
        "s = resolve(sys.argv[1]); g = gguf_cache.gguf_file_for(s)\n"
        "print(gguf_cache.ensure_gguf_stage(g, 'config', s))\n"
    )
    env = {**os.environ, "LLMSCOPE_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(gguf_path)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    folders = {out.strip() for out, _ in outputs}
    assert len(folders) == 1
    assert sum(err.count("CONVERTING") for _, err in outputs) == 1  # converted once
    config = json.loads((Path(folders.pop()) / "config.json").read_text())
    assert config["model_type"] == "gemma3_text"


# --------------------------------------------------------------------------------------------
# The Hub reachability test (a local port stands in for the Hub; nothing leaves the machine)


def test_hub_reachability_is_tested_once_then_again_after_a_while(monkeypatch, notices):
    import socket

    from huggingface_hub import constants

    with socket.socket() as server:  # bound, not yet listening: connections are refused
        server.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(hub, "_hub_answers", {})
        for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.delenv(proxy, raising=False)

        assert hub.hub_reachable() is False
        assert hub.hub_reachable() is False  # the answer is reused: one note, not one per file
        assert sum("is not reachable: using the local cache only" in n for n in notices) == 1

        server.listen()  # the network comes back (a notebook kernel lives on)
        assert hub.hub_reachable() is False  # still within the reuse window
        monkeypatch.setattr(hub, "HUB_PROBE_TTL", 0.0)
        assert hub.hub_reachable() is True
        assert loading.model._pretrained_location(resolve("someone/model"), "config")[1] == {}

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline mode: no test at all
        monkeypatch.setattr(hub, "_connects", lambda endpoint: pytest.fail("tested in offline mode"))
        assert hub.hub_reachable() is False


# --------------------------------------------------------------------------------------------
# An older config.json without model_type (GPT-2 medium at an early revision has only architectures)


def _without_model_type(source: Path, folder: Path) -> Path:
    import shutil

    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["model_type"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_config_without_model_type_is_read_from_its_architectures(tiny_models, tmp_path, notices):
    import torch
    from transformers import AutoConfig, GPT2LMHeadModel

    intact = tiny_models["gpt2"]
    # a misleading folder name: only the architectures in config.json may decide
    bare = _without_model_type(intact, tmp_path / "tiny-llama-named-but-gpt2")
    with pytest.raises(ValueError, match="model_type"):
        AutoConfig.from_pretrained(bare)  # transformers alone refuses it

    assert llmscope.inspect_model(str(bare)).parameters.total == llmscope.inspect_model(str(intact)).parameters.total
    assert notices == ["config.json has no model_type; inferred 'gpt2' from architectures GPT2LMHeadModel"]

    lm = llmscope.load(str(bare), device="cpu", dtype="float32")
    assert lm.config.model_type == "gpt2"
    direct = GPT2LMHeadModel.from_pretrained(intact, dtype=torch.float32).eval()
    ids = lm.tokenizer("The cat sat on the mat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, direct(ids).logits)


def test_a_config_without_model_type_on_the_command_line(tiny_models, tmp_path, cli):
    bare = _without_model_type(tiny_models["gpt2"], tmp_path / "old-gpt2")
    done = cli("inspect", bare, "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json()["model_type"] == "gpt2"
    assert "config.json has no model_type; inferred 'gpt2' from architectures GPT2LMHeadModel" in done.stderr


@pytest.mark.parametrize("architectures", [["NoSuchModelForCausalLM"], None])
def test_a_config_without_model_type_that_cannot_be_inferred_names_the_key(tiny_models, tmp_path, architectures):
    bare = _without_model_type(tiny_models["gpt2"], tmp_path / "unknown")
    config = json.loads((bare / "config.json").read_text())
    config["architectures"] = architectures
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="config.json has no model_type") as info:
        llmscope.inspect_model(str(bare))
    assert "model_type" in info.value.hint


def test_model_type_inference_uses_transformers_mappings():
    assert loading.infer_model_type(["GPT2LMHeadModel"]) == "gpt2"  # not gpt-sw3, which shares the class
    assert loading.infer_model_type(["LlamaForCausalLM"]) == "llama"
    assert loading.infer_model_type(["BertForMaskedLM"]) == "bert"
    assert loading.infer_model_type(["Unknown", "MistralForCausalLM"]) == "mistral"
    assert loading.infer_model_type(["Unknown"]) is None


def test_model_type_inference_does_not_depend_on_hash_order():
    """gpt2 and gpt-sw3 share GPT2LMHeadModel and GPT2Config: the answer must not follow set order."""
    import subprocess
    import sys

    code = "from llmscope.loading import infer_model_type as f; print(f(['GPT2LMHeadModel']))"
    answers = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                       capture_output=True, text=True, timeout=120).stdout.strip()
        for seed in range(6)
    }
    assert answers == {"gpt2"}
