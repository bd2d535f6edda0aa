"""Shared fixtures: an isolated offline environment, tiny random-weight models built once per test
session from real architectures with ``save_pretrained``, and the real embedded Gemma 3 270M.

Tiny models get real tokenizers trained here with the ``tokenizers`` library (byte-level BPE for
the decoders, WordPiece for BERT), so tokenizer behaviour is faithful without any download.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from tiny_architectures import tiny_families  # noqa: F401 - a session fixture every module may ask for

# Set before anything imports huggingface_hub, which reads these once at import time: tests never
# touch the network, even from module-level imports during collection.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

DATA = Path(__file__).parent / "data"
CONFIGS = DATA / "configs"

CORPUS = [
    "The cat sat on the mat because it was tired.",
    "The quick brown fox jumps over the lazy dog. The dog was not amused.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "Once upon a time, there was a little robot who loved to read books about the sea.",
    "naïve café résumé — 東京は日本の首都です。 😀🚀 emoji and CJK text",
    "\tTabs\tand  double  spaces\nand new lines\r\n",
    "Attention is all you need. Transformers process tokens in parallel.",
] * 4


# An isolated environment for every test: no network, no user caches.


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The llmscope cache shared by the whole test session (the demo model is converted once).

    Set LLMSCOPE_TEST_CACHE to keep it between runs while developing.
    """
    kept = os.environ.get("LLMSCOPE_TEST_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("llmscope-cache")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, session_cache: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf-home"))
    monkeypatch.setenv("LLMSCOPE_CACHE", str(session_cache))
    monkeypatch.setenv("LLMSCOPE_NO_PROGRESS", "1")
    monkeypatch.delenv("LLMSCOPE_DEBUG", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    yield


# --------------------------------------------------------------------------------------------
# Running the CLI the way a shell does: through main(), the error boundary included


@dataclasses.dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``llmscope ARGS...`` in-process through ``main()``; returns exit code, stdout, stderr."""
    from llmscope import render
    from llmscope.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        render.reset_consoles()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


def assert_one_error_line(result: CliResult, code: int | None = None) -> str:
    """A clean failure: exactly one line starting with 'Error:' on stderr, nothing on stdout, no
    traceback, not the last line of defence ("this is a bug in llmscope": a library error leaked
    untranslated), and exit CODE when given (else any non-zero). Returns the error line."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "", result.stdout
    assert "this is a bug in llmscope" not in lines[0], lines[0]
    if code is None:
        assert result.exit_code != 0, f"exit 0: {lines[0]}"
    else:
        assert result.exit_code == code, f"exit {result.exit_code}: {lines[0]}"
    return lines[0]


def api_error(call) -> str:
    """The UsageError CALL raises, in the API's words: parameters named plainly, no backtick, no flag."""
    from llmscope.errors import UsageError

    with pytest.raises(UsageError) as caught:
        call()
    text = str(caught.value)
    assert "`" not in text and "--" not in text, text
    return text


def cli_error(cli, one_error_line, *args: str) -> str:
    """The one error line ``llmscope ARGS`` ends in (exit 2), the parameters written as its own options."""
    line = one_error_line(cli(*args), 2)
    assert "`" not in line, line
    return line


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a whole module: tiny models run ~50x faster on one thread than on two
    busy cores (no spinning workers). Ask for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_error_line():
    """``one_error_line(result, code=None) -> str``: see ``assert_one_error_line``."""
    return assert_one_error_line


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch):
    """``stdin(data)``: standard input as a process gets it, bytes (or str, encoded as UTF-8) under a
    strict UTF-8 text layer, so invalid UTF-8 fails the way it does in a shell."""

    def feed(data: bytes | str) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))

    return feed


# --------------------------------------------------------------------------------------------
# Tiny tokenizers and models


def _bpe_tokenizer(special: list[str], bos: str | None, eos: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos or eos, eos_token=eos, unk_token=None)


def _wordpiece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _save(folder: Path, model, tokenizer) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny random-weight models, each a real transformers architecture."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        MixtralConfig,
        MixtralForCausalLM,
    )

    root = tmp_path_factory.mktemp("tiny-models")
    folders: dict[str, Path] = {}
    torch.manual_seed(0)

    gpt2_tok = _bpe_tokenizer(["<|endoftext|>"], bos=None, eos="<|endoftext|>")
    eos = gpt2_tok.convert_tokens_to_ids("<|endoftext|>")
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=len(gpt2_tok), bos_token_id=eos,
            eos_token_id=eos,
        )
    )
    folders["gpt2"] = _save(root / "tiny-gpt2", gpt2, gpt2_tok)

    llama_tok = _bpe_tokenizer(["<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"], bos="<s>", eos="</s>")
    llama_tok.chat_template = CHAT_TEMPLATE
    ids = {t: llama_tok.convert_tokens_to_ids(t) for t in ("<s>", "</s>")}
    common = dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, vocab_size=len(llama_tok),
        bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], tie_word_embeddings=False,
    )
    folders["llama"] = _save(root / "tiny-llama", LlamaForCausalLM(LlamaConfig(**common)), llama_tok)
    mixtral = MixtralForCausalLM(MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2))
    folders["mixtral"] = _save(root / "tiny-mixtral", mixtral, llama_tok)

    bert_tok = _wordpiece_tokenizer()
    bert = BertForMaskedLM(
        BertConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128, vocab_size=len(bert_tok), pad_token_id=bert_tok.pad_token_id,
        )
    )
    folders["bert"] = _save(root / "tiny-bert", bert, bert_tok)
    return folders


CHATML_END = ("{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|im_end|>\n"
              "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="session")
def im_end_chat(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The tiny Llama whose chat turns end in ``<|im_end|>``, an added token that is not its EOS
    (as in ChatML models), with the LM-head row of ``<|im_end|>`` set to twice the row of the 4th
    token greedy decoding writes: a greedy chat reply now reaches ``<|im_end|>`` within 4 tokens.
    Returns (folder, the ids of the chat prompt system "Be brief." + user "Hi there", the id of <|im_end|>)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    tok.chat_template = CHATML_END
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end != tok.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval()
    model.resize_token_embeddings(len(tok))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
        "input_ids"]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=4,
                             pad_token_id=tok.eos_token_id)
        model.lm_head.weight[im_end] = 2 * model.lm_head.weight[out[0, -1]]
    folder = tmp_path_factory.mktemp("tiny-llama-im-end")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, ids, im_end


@pytest.fixture(scope="session")
def hf_tokenizers(tiny_models: dict[str, Path]):
    """Each tiny model's tokenizer loaded by ``AutoTokenizer`` directly, defaults only: the
    reference tests compare llmscope with. Do not mutate them (shared by the session)."""
    from transformers import AutoTokenizer

    return {name: AutoTokenizer.from_pretrained(folder) for name, folder in tiny_models.items()}


@pytest.fixture(scope="session")
def loaded_models(tiny_models: dict[str, Path]):
    """Each tiny model loaded once by ``llmscope.load`` on the CPU in float32, to pass as
    ``model=``: {'gpt2', 'llama', 'mixtral', 'bert'} -> LoadedModel. Do not mutate them."""
    import llmscope

    return {name: llmscope.load(str(folder), device="cpu", dtype="float32") for name, folder in tiny_models.items()}


@pytest.fixture
def config_folder(tmp_path: Path):
    """A model folder holding only a published config.json (no weights): ``config_folder('gpt2')``."""

    def make(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(CONFIGS / f"{name}.json", folder / "config.json")
        return folder

    return make


@pytest.fixture(scope="session")
def demo_model():
    """The real embedded Gemma 3 270M, loaded once per session in float32 on the CPU (slow tests)."""
    import llmscope

    return llmscope.load(None, device="cpu", dtype="float32")


GGUF_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama GGUF written with the gguf package, as llama.cpp lays one out: metadata, a
    byte-level BPE tokenizer with a chat template, and random weights stored as F32, F16 and Q8_0
    (quantized by gguf's own quantizer), so that dequantization is exercised too."""
    import gguf
    import numpy as np
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(0)
    merges = ["Ġ t", "h e", "Ġt he", "a t", "Ġ c", "Ġc at", "Ġ s", "Ġs at", "Ġ m", "Ġm at"]
    tokens = [*bytes_to_unicode().values(), *(m.replace(" ", "") for m in merges)]
    specials = ["<s>", "</s>", "<|user|>", "<|assistant|>"]
    types = [gguf.TokenType.NORMAL] * len(tokens) + [gguf.TokenType.CONTROL] * len(specials)
    tokens += specials
    vocab, hidden, layers, heads, kv_heads, ffn = len(tokens), 64, 2, 4, 2, 128
    kv_dim = kv_heads * hidden // heads

    path = tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama-q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<s>"))
    writer.add_eos_token_id(tokens.index("</s>"))
    writer.add_chat_template(GGUF_CHAT_TEMPLATE)

    def tensor(name: str, *shape: int, store: str = "F32") -> None:
        values = (rng.standard_normal(shape) * (0.05 if len(shape) > 1 else 1.0)).astype(np.float32)
        if store == "Q8_0":
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(values, q8), raw_dtype=q8)
        else:
            writer.add_tensor(name, values.astype(np.float16) if store == "F16" else values)

    tensor("token_embd.weight", vocab, hidden, store="F16")
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        tensor(f"blk.{i}.attn_q.weight", hidden, hidden, store="Q8_0")
        tensor(f"blk.{i}.attn_k.weight", kv_dim, hidden, store="Q8_0")
        tensor(f"blk.{i}.attn_v.weight", kv_dim, hidden, store="Q8_0")
        tensor(f"blk.{i}.attn_output.weight", hidden, hidden, store="Q8_0")
        tensor(f"blk.{i}.ffn_gate.weight", ffn, hidden, store="Q8_0")
        tensor(f"blk.{i}.ffn_up.weight", ffn, hidden, store="Q8_0")
        tensor(f"blk.{i}.ffn_down.weight", hidden, ffn, store="Q8_0")
    tensor("output_norm.weight", hidden)
    tensor("output.weight", vocab, hidden, store="Q8_0")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
