"""llmscope.text.prompts: the one prompt path, against transformers' tokenizers called directly, and the
same behaviour through every command that takes a prompt (tiny fixtures; the embedded Gemma is slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmscope.text import prompts
from llmscope.errors import ModelFormatError, UsageError

REFUSING = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Reads a dunder attribute: jinja's sandbox stops it with a SecurityError when it is printed.
UNSAFE = "{{ messages.__class__.__mro__ }}{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _with_template(src: Path, dst: Path, template: str) -> Path:
    from transformers import AutoTokenizer

    shutil.copytree(src, dst)
    tok = AutoTokenizer.from_pretrained(dst)
    tok.chat_template = template
    tok.save_pretrained(dst)
    return dst


@pytest.fixture(scope="module")
def template_models(tiny_models, tmp_path_factory):
    """The tiny llama with a template that refuses system messages, and one the sandbox stops."""
    root = tmp_path_factory.mktemp("templates")
    return {
        "refusing": _with_template(tiny_models["llama"], root / "refusing", REFUSING),
        "unsafe": _with_template(tiny_models["llama"], root / "unsafe", UNSAFE),
    }


# --------------------------------------------------------------------------------------------
# The API


def test_check_prompt_options():
    prompts.check_prompt_options("hi", chat=True, system="")
    prompts.check_prompt_options(None, chat=False, system=None)
    prompts.check_prompt_options("", chat=False, system=None, allow_empty=True)
    with pytest.raises(UsageError, match="empty"):
        prompts.check_prompt_options("", chat=False, system=None)
    with pytest.raises(UsageError, match="surrogate at character 1"):
        prompts.check_prompt_options("a\udcff", chat=False, system=None)
    with pytest.raises(UsageError, match="^system needs chat=True"):
        prompts.check_prompt_options("hi", chat=False, system="")


def test_render_chat_is_apply_chat_template(hf_tokenizers):
    tok = hf_tokenizers["llama"]
    for system in (None, "", "Be brief."):
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": "Hi"}
        ]
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert prompts.render_chat(tok, "llama", "Hi", system) == expected
    # An empty system message is a message: the template writes its turn.
    assert prompts.render_chat(tok, "llama", "Hi", "") != prompts.render_chat(tok, "llama", "Hi", None)


def test_template_errors_map_to_usage_and_format_errors(template_models):
    from transformers import AutoTokenizer

    refusing = AutoTokenizer.from_pretrained(template_models["refusing"])
    assert prompts.render_chat(refusing, "m", "Hi", None).endswith("<|assistant|>\n")
    with pytest.raises(UsageError, match="System role not supported"):
        prompts.render_chat(refusing, "m", "Hi", "sys")
    unsafe = AutoTokenizer.from_pretrained(template_models["unsafe"])
    with pytest.raises(ModelFormatError, match="sandbox"):
        prompts.render_chat(unsafe, "m", "Hi", None)


def test_encode_plain_and_chat_match_transformers(hf_tokenizers):
    tok = hf_tokenizers["llama"]
    plain = prompts.encode(tok, "The cat sat", name="llama")
    assert plain.ids == tok("The cat sat")["input_ids"] and plain.text == "The cat sat"
    assert plain.added == {0: "tokenizer"} and plain.ids[0] == tok.bos_token_id
    assert plain.offsets == [tuple(o) for o in tok("The cat sat", return_offsets_mapping=True)["offset_mapping"]]
    assert prompts.encode(tok, "The cat sat", name="llama", add_special_tokens=False).added == {}

    messages = [{"role": "system", "content": ""}, {"role": "user", "content": "Hi <s> there"}]
    chat = prompts.encode(tok, "Hi <s> there", name="llama", chat=True, system="")
    assert chat.ids == list(tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    assert chat.messages == messages
    # The template wrote <|system|>, </s>, <|user|>, </s>, <|assistant|>; the <s> inside the text is the user's.
    inside = chat.ids.index(tok.convert_tokens_to_ids("<s>"))
    assert inside not in chat.added
    assert sorted(tok.convert_ids_to_tokens([chat.ids[i] for i in chat.added])) == sorted(
        ["<|system|>", "</s>", "<|user|>", "</s>", "<|assistant|>"]
    )
    assert set(chat.added.values()) == {"chat template"}


def test_two_bos_tokens_warn(hf_tokenizers):
    tok = hf_tokenizers["llama"]
    encoded = prompts.encode(tok, "<s>Hello", name="llama")
    assert encoded.ids[:2] == [tok.bos_token_id] * 2 == tok("<s>Hello")["input_ids"][:2]
    assert len(encoded.warnings) == 1 and "two <s> tokens" in encoded.warnings[0]
    assert prompts.encode(tok, "Hello", name="llama").warnings == []
    assert prompts.encode(tok, "<s>Hello", name="llama", add_special_tokens=False).warnings == []


def test_context_length_and_check(tiny_models):
    from transformers import AutoConfig

    from llmscope.config.values import context_length

    config = AutoConfig.from_pretrained(tiny_models["llama"])
    assert context_length(config) == config.max_position_embeddings == 256
    config.max_position_embeddings = 0
    assert context_length(config) is None
    prompts.check_context(10, 10)
    prompts.check_context(10**6, None)
    with pytest.raises(UsageError, match="11 tokens, longer than the model's context of 10"):
        prompts.check_context(11, 10)
    with pytest.raises(UsageError, match="plus 3 steps") as info:
        prompts.check_context(8, 10, extra=3, extra_what="steps")
    assert "fewer steps" in info.value.hint


def test_token_text(hf_tokenizers):
    tok = hf_tokenizers["llama"]
    hello = tok("Hello", add_special_tokens=False)["input_ids"][0]
    assert prompts.token_text(tok, hello) == tok.decode([hello])
    assert prompts.token_text(tok, tok.bos_token_id) == "<s>"


# --------------------------------------------------------------------------------------------
# Through the commands


PROMPT_COMMANDS = [
    ("tokenize",),
    ("next-token",),
    ("layers",),
    ("generate", "-n", "2"),
    ("compare", "-n", "2"),
]


@pytest.mark.parametrize("command", PROMPT_COMMANDS, ids=lambda c: c[0])
def test_refusing_template_is_a_usage_error_everywhere(cli, one_error_line, template_models, command):
    result = cli(*command, "Hi", "-m", template_models["refusing"], "--chat", "--system", "Be brief.")
    line = one_error_line(result, 2)
    assert "System role not supported" in line


@pytest.mark.parametrize("command", PROMPT_COMMANDS[:3], ids=lambda c: c[0])
def test_sandboxed_template_is_a_model_error(cli, one_error_line, template_models, command):
    result = cli(*command, "Hi", "-m", template_models["unsafe"], "--chat")
    assert "sandbox" in one_error_line(result, 1)


def test_empty_system_is_the_same_prompt_everywhere(cli, tiny_models, hf_tokenizers):
    llama = tiny_models["llama"]
    tokenized = cli("tokenize", "Hi", "-m", llama, "--chat", "--system", "", "--json")
    assert tokenized.exit_code == 0, tokenized.stderr
    ids = tokenized.json()["ids"]
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}]
    assert ids == list(hf_tokenizers["llama"].apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    without = cli("tokenize", "Hi", "-m", llama, "--chat", "--json").json()["ids"]
    assert len(without) < len(ids)

    nxt = cli("next-token", "Hi", "-m", llama, "--chat", "--system", "", "--json")
    assert nxt.exit_code == 0, nxt.stderr
    assert nxt.json()["input_ids"] == ids
    layered = cli("layers", "Hi", "-m", llama, "--chat", "--system", "", "--json")
    assert layered.exit_code == 0, layered.stderr
    assert layered.json()["input_ids"] == ids
    generated = cli("generate", "Hi", "-m", llama, "--chat", "--system", "", "-n", "1", "--json")
    assert generated.exit_code == 0, generated.stderr
    assert generated.json()["prompt_tokens"] == len(ids)


@pytest.mark.parametrize(
    "command", [*PROMPT_COMMANDS, ("tokenize", "--compare", "gpt2")], ids=lambda c: " ".join(c)
)
def test_system_without_chat_fails_before_any_load(cli, one_error_line, monkeypatch, tiny_models, command):
    import llmscope.loading.model
    import llmscope.loading.resolve
    import llmscope.text.tokens

    def no_load(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the options were checked")

    for module, name in [
        (llmscope.loading.model, "load"), (llmscope.loading.model, "load_model"),
        (llmscope.loading.model, "load_tokenizer"), (llmscope.loading.model, "load_config"),
        (llmscope.loading.resolve, "resolve"), (llmscope.text.tokens, "get_tokenizer"),
    ]:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, no_load)
    result = cli(*command, "Hi", "-m", tiny_models["llama"], "--system", "Be brief.")
    line = one_error_line(result, 2)
    assert "--system needs --chat" in line


def test_two_bos_warning_in_tokenize_and_layers(cli, tiny_models):
    llama = tiny_models["llama"]
    for command in ("tokenize", "layers"):
        shown = cli(command, "<s>Hello", "-m", llama)
        assert shown.exit_code == 0, shown.stderr
        assert "Warning: the prompt starts with two <s> tokens" in shown.stderr
        data = cli(command, "<s>Hello", "-m", llama, "--json")
        assert len(data.json()["warnings"]) == 1 and "two <s> tokens" in data.json()["warnings"][0]
        clean = cli(command, "Hello", "-m", llama, "--json")
        assert clean.json()["warnings"] == [] and "Warning" not in clean.stderr


@pytest.mark.slow
def test_two_bos_on_the_embedded_gemma(cli, demo_model):
    from llmscope.text.tokens import tokenize

    tok = demo_model.tokenizer
    result = tokenize("<bos>Hello", model=demo_model)
    assert result.ids == tok("<bos>Hello")["input_ids"]
    assert result.ids[:2] == [tok.bos_token_id] * 2
    assert len(result.warnings) == 1 and "two <bos> tokens" in result.warnings[0]
    assert "--no-add-special-tokens" in result.warnings[0]
    assert tokenize("Hello", model=demo_model).warnings == []
    shown = cli("tokenize", "<bos>Hello", "--json")
    assert shown.exit_code == 0 and shown.json()["warnings"] == result.warnings
    assert "Warning: the prompt starts with two <bos> tokens" in shown.stderr


def test_every_command_reads_one_context_length(tmp_path, tiny_models, cli):
    """A config that states its context only as seq_length (ChatGLM's name; max_position_embeddings 0,
    as LlamaConfig would otherwise fill in its default): generate, memory, next-token and inspect all
    see the same 24 tokens."""
    import json
    import shutil

    folder = tmp_path / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 0
    config["seq_length"] = 24
    (folder / "config.json").write_text(json.dumps(config))
    assert cli("inspect", str(folder), "--json").json()["max_position_embeddings"] == 24
    assert cli("memory", str(folder), "--json", "--memory", "1GiB").json()["max_position_embeddings"] == 24
    long = "word " * 30
    for command in (["next-token", long], ["generate", long, "--max-new-tokens", "2"]):
        r = cli(*command, "-m", str(folder), "--device", "cpu")
        assert r.exit_code != 0 and "context of 24" in r.stderr, (command, r.stderr)


def test_attention_and_experts_keep_the_prompts_warnings(cli, tiny_models):
    """A prompt that starts with <s> while the tokenizer adds another: every view that took it says so
    (it used to be dropped by attention and experts)."""
    for command, model in (("attention", "llama"), ("experts", "mixtral")):
        r = cli(command, "<s>The cat sat", "-m", tiny_models[model], "--device", "cpu", "--json")
        assert r.exit_code == 0, r.stderr
        warnings = r.json()["warnings"]
        assert len(warnings) == 1 and "<s>" in warnings[0], command
        assert f"Warning: {warnings[0]}" in " ".join(r.stderr.split())  # Rich wraps it at the console's width


def test_embeddings_keeps_the_context_sentences_warnings(cli, tiny_models):
    """A --context sentence that starts with <s> while the tokenizer adds another: said, with the sentence."""
    r = cli("embeddings", "cat", "-m", tiny_models["llama"], "--word", "cat", "--context", "<s>The cat sat.",
            "--context", "A cat.", "--json")
    assert r.exit_code == 0, r.stderr
    warnings = r.json()["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("'<s>The cat sat.': ") and "two <s>" in warnings[0]
    assert f"Warning: {warnings[0]}" in " ".join(r.stderr.split())
