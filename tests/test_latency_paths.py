"""The fast paths of issue 18 give exactly what the slow ones give: tokenize on the ``tokenizers``
library alone against AutoTokenizer, the GGUF header reader against GGUFReader and transformers'
GGUF config, completion values without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmscope.loading import fast_tokenizer
from llmscope.loading import gguf_header

TEXTS = [
    "Hello, world!",
    "  naïve café 東京 😀\n\tdef f(x): return x ** 2",
    "Don't <s> stop </s> [CLS] it's 3.14",
    "",
]


def _fast(folder: Path):
    """The tokenizer tokenize() uses for FOLDER, after a first load has filled the cache."""
    from llmscope.text.vocab import get_tokenizer

    get_tokenizer(str(folder), fast=True)
    tokenizer, _ = get_tokenizer(str(folder), fast=True)
    return tokenizer


def _same_as_autotokenizer(folder: Path, reference) -> None:
    """tokenize()/decode_ids() through the fast path equal AutoTokenizer called directly, and equal
    what llmscope gives with transformers' tokenizer."""
    from llmscope.text.tokens import decode_ids, tokenize

    fast = _fast(folder)
    assert isinstance(fast, fast_tokenizer.FastTokenizer), "the cache should hold a tokenizers-only tokenizer"
    for text in [*TEXTS, " ".join(reference.all_special_tokens)]:
        for add in (True, False):
            want = reference(text, add_special_tokens=add, return_offsets_mapping=True)
            result = tokenize(text, model=str(folder), add_special_tokens=add)
            assert result.ids == list(want["input_ids"])
            assert [(t.start, t.end) for t in result.tokens] == [tuple(o) for o in want["offset_mapping"]]
            assert [t.token for t in result.tokens] == reference.convert_ids_to_tokens(result.ids)
            special = set(reference.all_special_ids) | {
                i for i, t in reference.added_tokens_decoder.items() if t.special
            }
            assert [t.special for t in result.tokens] == [i in special for i in result.ids]
            # the same result llmscope builds on transformers' own tokenizer
            assert result.to_json() == tokenize(text, model=reference, add_special_tokens=add).to_json() | {
                "model": result.model
            }
            if result.ids:
                assert decode_ids(result.ids, model=str(folder)).text == reference.decode(result.ids)
    assert sorted(fast.all_special_ids) == sorted(reference.all_special_ids)
    assert len(fast) == len(reference) and fast.vocab_size == reference.vocab_size
    assert getattr(fast, "add_bos_token", None) == getattr(reference, "add_bos_token", None)


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])  # byte-level BPE with and without BOS, WordPiece
def test_fast_tokenize_equals_autotokenizer(tiny_models, hf_tokenizers, name):
    _same_as_autotokenizer(tiny_models[name], hf_tokenizers[name])


def _variant(tiny_models, tmp_path: Path, change) -> Path:
    folder = tmp_path / "variant"
    shutil.copytree(tiny_models["llama"], folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    change(folder, config)
    config_file.write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("add_bos", [False, True])
def test_fast_tokenize_add_bos_token_override(tiny_models, tmp_path, add_bos):
    from transformers import AutoTokenizer

    folder = _variant(tiny_models, tmp_path, lambda _f, c: c.update(add_bos_token=add_bos, add_eos_token=not add_bos))
    _same_as_autotokenizer(folder, AutoTokenizer.from_pretrained(folder))


def test_fast_tokenize_added_tokens(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    tokenizer.add_tokens(["catnip", "<tool>"])
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|img|>"]})
    folder = tmp_path / "added"
    shutil.copytree(tiny_models["llama"], folder)
    tokenizer.save_pretrained(folder)
    reference = AutoTokenizer.from_pretrained(folder)
    assert reference.convert_tokens_to_ids("catnip") >= reference.vocab_size
    _same_as_autotokenizer(folder, reference)
    assert tokenize_ids(folder, "a catnip <tool> <|img|>") == reference("a catnip <tool> <|img|>")["input_ids"]


def tokenize_ids(folder: Path, text: str) -> list[int]:
    from llmscope.text.tokens import tokenize

    return tokenize(text, model=str(folder)).ids


def test_fast_tokenize_gguf_converted(tiny_gguf):
    """A GGUF's tokenizer as transformers converts it (the folder the GGUF cache holds)."""
    from transformers import AutoTokenizer

    from llmscope.text.tokens import tokenize

    text = "the cat sat on the mat <s>"
    first = tokenize(text, model=str(tiny_gguf))
    second = tokenize(text, model=str(tiny_gguf))
    reference = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    want = reference(text, return_offsets_mapping=True)
    assert first.to_json() == second.to_json()
    assert second.ids == want["input_ids"]
    assert [(t.start, t.end) for t in second.tokens] == [tuple(o) for o in want["offset_mapping"]]
    assert [t.token for t in second.tokens] == reference.convert_ids_to_tokens(second.ids)


def test_a_class_with_its_own_decode_keeps_transformers(tiny_models):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    class OwnDecode(PreTrainedTokenizerFast):
        def _decode(self, token_ids, **kwargs):  # noqa: ANN001
            return "!" + super()._decode(token_ids, **kwargs)

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    tokenizer.__class__ = OwnDecode
    fast, reason = fast_tokenizer.provably_same(tokenizer)
    assert not fast and "_decode" in reason


def test_cache_entry_is_keyed_by_content(tiny_models, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_models["gpt2"], folder)
    before = fast_tokenizer.cache_key(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert fast_tokenizer.cache_key(folder) != before


def test_warm_tokenize_imports_no_torch(tiny_models):
    """The CLI's tokenize, once cached, runs on tokenizers alone."""
    folder = str(tiny_models["llama"])
    code = (
        "import sys\nfrom llmscope.cli import main\nsys.argv=['llmscope','tokenize','Hi there','-m',sys.argv[1],'--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch','transformers') if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert json.loads(done.stdout)["tokens"]


@pytest.mark.slow
def test_fast_tokenize_embedded_gemma():
    """SentencePiece-style Gemma (262k vocabulary, byte fallback) from the embedded GGUF."""
    from transformers import AutoTokenizer

    from llmscope.loading.gguf_cache import ensure_gguf_stage, gguf_file_for
    from llmscope.loading.resolve import resolve
    from llmscope.text.tokens import tokenize

    source = resolve(None)
    folder = ensure_gguf_stage(gguf_file_for(source), "tokenizer", source)
    reference = AutoTokenizer.from_pretrained(folder)
    tokenize("warm up", model=None)
    assert isinstance(fast_tokenizer.tokenizer_for(source), fast_tokenizer.FastTokenizer)
    for text in [*TEXTS, "<start_of_turn>user\nhi<end_of_turn>", "\x00\x01 byte fallback \U0001f9ec"]:
        result = tokenize(text)
        want = reference(text, return_offsets_mapping=True)
        assert result.ids == want["input_ids"]
        assert [(t.start, t.end) for t in result.tokens] == [tuple(o) for o in want["offset_mapping"]]
        assert [t.token for t in result.tokens] == reference.convert_ids_to_tokens(result.ids)
        assert result.to_json() == tokenize(text, model=reference).to_json() | {"model": result.model}


# --------------------------------------------------------------------------------------------
# The GGUF header


def _check_header_against_reader(path: Path) -> None:
    import gguf

    from llmscope.loading.gguf_cache import gguf_tensor_summary

    header = gguf_header.read_header(path)
    reader = gguf.GGUFReader(str(path))
    assert set(header.metadata) == {k for k in reader.fields if not k.startswith("GGUF.")}
    for key, value in header.metadata.items():
        field = reader.fields[key]
        if isinstance(value, gguf_header.StringArray):
            assert value.count == len(field.data)
        elif isinstance(value, list):
            assert value == [field.parts[i].tolist()[0] for i in field.data]
        else:
            assert value == field.contents()
    assert [(t.name, t.ggml_type, int(t.offset)) for t in header.tensors] == [
        (t.name, int(t.tensor_type), int(t.data_offset) - int(reader.data_offset)) for t in reader.tensors
    ]
    assert gguf_header.tensor_summary(header, path) == gguf_tensor_summary(path)


def _check_config_against_transformers(path: Path) -> None:
    from transformers import CONFIG_MAPPING, AutoConfig

    values = gguf_header.config_dict(gguf_header.read_header(path))
    assert values is not None
    want = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    got = CONFIG_MAPPING[values["model_type"]].from_dict(values)
    assert got.to_json_string() == want.to_json_string()


def test_gguf_header_tiny(tiny_gguf):
    _check_header_against_reader(tiny_gguf)
    _check_config_against_transformers(tiny_gguf)


def test_gguf_config_stage_from_the_header(tiny_gguf, tmp_path):
    """The config stage written from the header is the one transformers' reader writes."""
    from transformers import AutoConfig

    assert gguf_header.write_config_stage(tiny_gguf, tmp_path) is None
    want = AutoConfig.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(want.to_json_string())


def test_the_gguf_port_was_compared_with_the_installed_transformers():
    """The header port runs only on a transformers whose GGUF config reader it was compared with: a release
    that changes that code fails here (and the tests above say whether the port still matches)."""
    from importlib.metadata import version

    assert gguf_header.port_applies(), (
        f"transformers {version('transformers')} changed load_gguf_checkpoint or its config mappings (sha256 "
        f"{gguf_header.reader_fingerprint()}): check the port against it and add the hash to PORTED_SOURCES")


def test_a_gguf_header_fallback_says_why(tiny_gguf, tmp_path, monkeypatch, cli):
    """A transformers whose reader changed: the slow way, with one notice on stderr saying why."""
    monkeypatch.setattr(gguf_header, "PORTED_SOURCES", {})
    why = gguf_header.write_config_stage(tiny_gguf, tmp_path / "stage")
    assert why is not None and "transformers" in why and not (tmp_path / "stage" / "config.json").exists()
    monkeypatch.setenv("LLMSCOPE_CACHE", str(tmp_path / "fresh-cache"))
    r = cli("inspect", str(tiny_gguf), "--json")
    assert r.exit_code == 0
    assert "fast header read does not apply" in r.stderr and why in r.stderr
    assert json.loads(r.stdout)["model_type"]


def test_gguf_header_refuses_what_it_cannot_read(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (1).to_bytes(4, "little") + bytes(16))
    with pytest.raises(gguf_header.HeaderError):
        gguf_header.read_header(bad)
    assert gguf_header.write_config_stage(bad, tmp_path) is not None


@pytest.mark.slow
def test_gguf_header_embedded_gemma():
    from llmscope.loading.gguf_cache import embedded_gguf_path

    path = embedded_gguf_path()
    _check_header_against_reader(path)
    _check_config_against_transformers(path)


# --------------------------------------------------------------------------------------------
# Completion that knows the values


def test_completion_values_are_the_checked_ones():
    from llmscope import _completion
    from llmscope.loading import devices
    from llmscope.decoding import sampling
    from llmscope.decoding import stepping

    assert _completion.GENERATE_STRATEGIES == sampling.STRATEGIES
    assert _completion.NEXT_TOKEN_STRATEGIES == stepping.STRATEGIES
    assert _completion.DEVICES == devices.DEVICES
    assert _completion.DTYPES == devices.DTYPES
    from llmscope.explain import attribution
    from llmscope.text import spans

    assert _completion.WHY_METHODS == attribution.METHODS
    assert _completion.WHY_UNITS == spans.BY
    for value in _completion.complete_device(""):
        assert devices.validate_device(value) == value


def _tab(shell: str, line: str) -> list[str]:
    """What the installed completion script gets back from llmscope for LINE (the cursor at its end)."""
    env = {**os.environ, "_LLMSCOPE_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        words = line.split(" ")
        env.update(COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    else:
        env.update(_TYPER_COMPLETE_ARGS=line, _TYPER_COMPLETE_FISH_ACTION="get-args")
    code = (
        "import sys\nfrom llmscope.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import on TAB'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout.replace("_arguments '*: :((", "").replace("\\\\:", ":")  # zsh escapes "cuda\\:0"
    return [w.strip('"()\'') for w in out.split()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_tab_offers_option_values(shell):
    assert _tab(shell, "llmscope generate hi --strategy to") == ["top-k", "top-p"]
    assert _tab(shell, "llmscope next-token hi --strategy ") == ["greedy", "sample", "top-k", "top-p", "min-p",
                                                                 "typical"]  # generate's, but beam
    assert _tab(shell, "llmscope compare hi --strategies greedy,to") == ["greedy,top-k", "greedy,top-p"]
    assert _tab(shell, "llmscope generate hi --device cu")[:2] == ["cuda", "cuda:0"]
    assert _tab(shell, "llmscope layers hi --dtype b") == ["bfloat16"]
    assert _tab(shell, "llmscope memory --for ") == ["generate", "forward"]
    assert _tab(shell, "llmscope memory --dtype b") == ["bfloat16"]  # memory's own --dtype completes too
    assert _tab(shell, "llmscope memory --kv-dtype f") == ["float32", "float16"]


def test_memory_for_values_are_the_modes():
    transient = pytest.importorskip("llmscope.memory.transient")  # issue 19's module
    from llmscope import _completion

    assert _completion.MEMORY_FOR == transient.MODES


# --------------------------------------------------------------------------------------------
# Counting a deep model from a prefix of its layers

DATA = Path(__file__).parent / "data" / "configs"


def _deep_configs() -> dict[str, object]:
    """Configs of every kind the fixtures and tests/data/configs hold, made deeper where they are shallow."""
    from transformers import AutoConfig, BertConfig, GPT2Config, LlamaConfig, MixtralConfig, Qwen2MoeConfig

    from tiny_architectures import gemma3_config, gemma4_text_config, mamba_config

    small = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=300)
    configs = {name: AutoConfig.from_pretrained(DATA / name) for name in sorted(os.listdir(DATA))}
    configs.update(
        gpt2_tied=GPT2Config(n_layer=12, n_embd=64, n_head=4, vocab_size=300),
        llama=LlamaConfig(num_hidden_layers=12, tie_word_embeddings=False, **small),
        mixtral=MixtralConfig(num_hidden_layers=10, num_local_experts=4, num_experts_per_tok=2, **small),
        bert=BertConfig(num_hidden_layers=9, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                        vocab_size=300),
        qwen2_moe_mixed=Qwen2MoeConfig(num_hidden_layers=14, num_experts=4, num_experts_per_tok=2,
                                       decoder_sparse_step=2, mlp_only_layers=[3], moe_intermediate_size=32,
                                       shared_expert_intermediate_size=32, **small),
        mamba=mamba_config(300, num_hidden_layers=11),
        gemma3_multimodal=gemma3_config(300),
        gemma4_text=gemma4_text_config(300),
    )
    configs["gemma4_text"].num_hidden_layers = 12
    configs["gemma4_text"].layer_types = ["sliding_attention"] * 3 + ["full_attention"] + ["sliding_attention"] * 8
    text = configs["gemma3_multimodal"].text_config
    text.num_hidden_layers = 13
    text.layer_types = (["sliding_attention"] * 5 + ["full_attention"]) * 2 + ["sliding_attention"]
    return configs


@pytest.mark.parametrize("name", sorted(_deep_configs()))
def test_prefix_build_counts_equal_the_full_build(name, monkeypatch):
    from llmscope import loading
    from llmscope.config import deep_build
    from llmscope.config.parameters import count_parameters, mixture_of_experts

    config = _deep_configs()[name]
    monkeypatch.setattr(deep_build, "FULL_BUILD_LIMIT", deep_build._num_layers(config) - 1)
    full = loading.build_meta_model(config)
    moe = mixture_of_experts(config, full)
    want = (moe, count_parameters(full, moe))
    meta = deep_build.build_meta_model(config)
    assert deep_build.exact_counts(config, meta) == want
    # the KV cache estimate of a deep config is read from a prefix of the cache's layers too
    from llmscope.config.kv_cache import kv_cache_estimate

    from llmscope.config.values import text_config
    from llmscope.memory.transient import _windows

    if not loading.is_masked_lm(config) and name != "mamba":
        deep = kv_cache_estimate(config, context=100, dtype="float32"), _windows(text_config(config))
        monkeypatch.setattr(deep_build, "FULL_BUILD_LIMIT", 10**9)
        assert deep == (kv_cache_estimate(config, context=100, dtype="float32"), _windows(text_config(config)))
    # every config here repeats its kinds, so a prefix was built (Gemma 4's inputs grow with depth: built whole)
    assert deep_build.is_prefix_build(meta) == (name != "gemma4_text")


def test_100000_layers_in_seconds(config_folder):
    """inspect and memory of a config declaring 100,000 layers: exact counts, quickly."""
    import time

    from llmscope.config.architecture import inspect_model
    from llmscope.memory.report import memory_report

    folder = config_folder("gpt2")
    config = json.loads((folder / "config.json").read_text())
    config["n_layer"] = 100_000
    (folder / "config.json").write_text(json.dumps(config))
    start = time.perf_counter()
    report = inspect_model(str(folder))
    memory = memory_report(str(folder), memory="1TB")
    assert time.perf_counter() - start < 60
    embeddings = 50257 * 768 + 1024 * 768
    per_layer = 12 * 768 * 768 + 13 * 768  # attention 4h^2+4h, mlp 8h^2+5h, two norms 4h
    assert report.parameters.total == embeddings + 100_000 * per_layer + 2 * 768
    assert memory.parameters.total == report.parameters.total


# --------------------------------------------------------------------------------------------
# A second inspect answers from the cache


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral", "bert"])
@pytest.mark.parametrize("modules", [False, True])
def test_cached_inspect_equals_a_fresh_one(tiny_models, name, modules, monkeypatch):
    from llmscope.loading import report_cache
    from llmscope.config.architecture import inspect_model

    first = inspect_model(str(tiny_models[name]), modules=modules)
    second = inspect_model(str(tiny_models[name]), modules=modules)  # from the cache
    monkeypatch.setattr(report_cache, "load", lambda *a, **k: None)
    fresh = inspect_model(str(tiny_models[name]), modules=modules)
    assert first == second == fresh


def test_cached_inspect_of_families_and_gguf(tiny_gguf, tiny_families, monkeypatch):
    from llmscope.loading import report_cache
    from llmscope.config.architecture import inspect_model

    models = [str(tiny_gguf), *(str(f) for f in tiny_families.values())]
    cached = [inspect_model(m) for m in models for _ in range(2)][1::2]
    monkeypatch.setattr(report_cache, "load", lambda *a, **k: None)
    assert cached == [inspect_model(m) for m in models]


def test_inspect_cache_follows_the_config(config_folder):
    from llmscope.config.architecture import inspect_model

    folder = config_folder("gpt2")
    assert inspect_model(str(folder)).num_hidden_layers == 12
    config = json.loads((folder / "config.json").read_text())
    config["n_layer"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    assert inspect_model(str(folder)).num_hidden_layers == 3


def test_warm_inspect_imports_no_torch(tiny_models):
    code = (
        "import sys\nfrom llmscope.cli import main\nsys.argv=['llmscope','inspect',sys.argv[1],'--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch','transformers') if m in sys.modules), file=sys.stderr)\n"
    )
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code, str(tiny_models["llama"])], capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert json.loads(done.stdout)["model_type"] == "llama"


def test_an_unreadable_inspect_entry_says_so_and_is_replaced(config_folder, cli, tmp_path, monkeypatch):
    from llmscope.loading.gguf_cache import cache_root

    monkeypatch.setenv("LLMSCOPE_CACHE", str(tmp_path / "cache"))
    folder = config_folder("gpt2")
    assert cli("inspect", str(folder), "--json").exit_code == 0
    entries = list((cache_root() / "inspect").glob("*.json"))
    assert len(entries) == 1
    entries[0].write_text('{"format": 1, "key": "')  # cut short, as a full disk would leave it
    r = cli("inspect", str(folder), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["num_hidden_layers"] == 12
    assert "inspect cache entry not used" in r.stderr
    r = cli("inspect", str(folder), "--json")  # rewritten whole: read quietly again
    assert r.exit_code == 0 and r.stderr == ""


def test_a_tokenizer_off_the_fast_path_says_so_once(tiny_models, tmp_path, monkeypatch, cli):
    """The fast-path decision is made once per files and library versions: the day it turns against a
    tokenizer (a new transformers), one notice says why; later runs are quiet."""
    folder = tmp_path / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    monkeypatch.setenv("LLMSCOPE_CACHE", str(tmp_path / "cache"))  # not decided yet for these files
    monkeypatch.setattr(fast_tokenizer, "provably_same", lambda tokenizer: (False, "the probe 'x' encodes differently"))
    first = cli("tokenize", "The cat sat", "-m", str(folder), "--json")
    assert first.exit_code == 0
    assert "not the fast path (the probe 'x' encodes differently)" in first.stderr
    second = cli("tokenize", "The cat sat", "-m", str(folder), "--json")
    assert second.exit_code == 0 and second.stderr == ""
    assert json.loads(second.stdout)["ids"] == json.loads(first.stdout)["ids"]
