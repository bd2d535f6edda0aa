"""Messages and terminal text that must not mislead (issue 28, items 6 and 7): a folder without weights,
the RAM guard's sentence, panel titles at 80 columns, the heatmap's column numbers past 9, and special
tokens among the next-token candidates."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import llmscope
from llmscope import loading
from llmscope.errors import ModelFormatError, ModelNotFoundError, ResourceError
from llmscope.loading import ram_guard
from llmscope.loading.library_errors import translate
from llmscope.loading.resolve import ModelSource, resolve
from llmscope.units import fmt_count

pytestmark = pytest.mark.usefixtures("one_thread")

NO_WEIGHTS_HINT = "(inspect and memory need no weights: they read config.json alone)"


# --------------------------------------------------------------------------------------------
# A folder with config.json alone


def test_a_config_only_folder_says_its_weights_are_missing(cli, config_folder, one_error_line):
    folder = config_folder("gpt2")
    line = one_error_line(cli("next-token", "Hello", "-m", folder, "--device", "cpu"), code=1)
    assert line == (f"Error: {folder} has no weights: the folder holds no .safetensors, .bin, .pt or .gguf file "
                    f"{NO_WEIGHTS_HINT}")
    assert "corrupt" not in line and "truncated" not in line
    inspected = cli("inspect", folder)
    assert inspected.exit_code == 0, inspected.stderr
    assert "GPT2LMHeadModel" in inspected.stdout
    memory = cli("memory", folder)
    assert memory.exit_code == 0, memory.stderr


def test_the_api_raises_the_same_error(config_folder):
    folder = config_folder("gpt2")
    with pytest.raises(ModelNotFoundError, match="has no weights") as info:
        llmscope.load(str(folder), device="cpu")
    assert info.value.hint == "inspect and memory need no weights: they read config.json alone"


def test_transformers_missing_file_error_is_not_called_corrupt():
    """A hub repository without weights: transformers' OSError names safetensors among the files it did not
    find; that is a missing file, not a corrupt one."""
    source = ModelSource(kind="hub", location="someone/config-only")
    exc = OSError("someone/config-only does not appear to have a file named pytorch_model.bin, model.safetensors, "
                  "tf_model.h5, model.ckpt or flax_model.msgpack.")
    error = translate(exc, source, "weights")
    assert isinstance(error, ModelNotFoundError)
    assert error.message == ("someone/config-only has no weights: the repository holds no .safetensors, .bin, .pt "
                             "or .gguf file")
    folder_error = translate(OSError("Error no file named model.safetensors, or pytorch_model.bin, found in "
                                     "directory /x."), ModelSource(kind="folder", location="/x"), "weights")
    assert folder_error.message.startswith("/x has no weights: the folder holds no")


def test_damaged_weights_are_still_called_corrupt(tiny_models, tmp_path, cli, one_error_line):
    folder = tmp_path / "damaged"
    shutil.copytree(tiny_models["gpt2"], folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    line = one_error_line(cli("next-token", "Hello", "-m", folder, "--device", "cpu"), code=1)
    assert "the safetensors weights are corrupt or truncated" in line
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        llmscope.load(str(folder), device="cpu")


# --------------------------------------------------------------------------------------------
# The RAM guard's sentence


def test_weights_too_big_for_ram_read_as_a_sentence(tiny_models, monkeypatch):
    config = loading.load_config(resolve(str(tiny_models["llama"])))
    weight_bytes = 4 * sum(p.numel() for p in loading.build_meta_model(config).parameters())
    monkeypatch.setattr(ram_guard, "available_ram", lambda: int(weight_bytes * 0.8))
    with pytest.raises(ResourceError) as info:
        llmscope.load(str(tiny_models["llama"]), device="cpu", dtype="float32")
    message = info.value.message
    assert re.search(r"for its weights in float32, but only [\d.,]+ [KMG]?i?B of RAM is available$", message), message
    assert "is of RAM" not in message


def test_weights_too_big_for_a_gpu_read_as_a_sentence(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (1024**3, 2 * 1024**3))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(ram_guard, "available_ram", lambda: 1024**3)
    with pytest.raises(ResourceError) as info:
        ram_guard.check_weights_fit(10 * 1024**3, "cuda:0", "float32", "m")
    assert info.value.message.endswith("but only 1.00 GiB is free on cuda:0"), info.value.message
    with pytest.raises(ResourceError) as info:
        ram_guard.check_weights_fit(10 * 1024**3, "auto", "float32", "m")
    assert info.value.message.endswith("but only 2.00 GiB is free on the GPUs and in RAM together"), info.value.message


# --------------------------------------------------------------------------------------------
# Panel titles at 80 columns


def _title_parts(folder: Path) -> list[str]:
    """The parts of inspect's panel title, as the report gives them."""
    r = llmscope.inspect_model(str(folder))
    kind = "masked" if r.kind == "masked" else "causal"
    parts = [r.architecture, f"  {r.model_type}, {kind} LM",
             f", {r.parameters.total:,} parameters ({fmt_count(r.parameters.total)})"]
    if r.dtype:
        parts.append(f", stored as {r.dtype}")
    return parts


@pytest.mark.parametrize("which", ["bert", "mixtral"])
def test_inspect_title_is_never_cut_at_80_columns(cli, tiny_models, config_folder, monkeypatch, which):
    monkeypatch.setenv("COLUMNS", "80")
    folder = tiny_models["bert"] if which == "bert" else config_folder("mixtral-8x7b-v0.1")
    parts = _title_parts(folder)
    full = "".join(parts)
    assert len(full) > 80 - 6, "the title must be too long for the border for this test to mean anything"
    result = cli("inspect", folder)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    border = re.fullmatch(r"╭─ (.*?) ─+╮", lines[0])
    assert border, lines[0]
    in_border = border.group(1)
    kept = next(n for n in range(len(parts), 0, -1) if "".join(parts[:n]) == in_border)  # whole parts only
    rest = "".join(parts[kept:]).lstrip(", ")
    assert rest and lines[1].strip("│ ").startswith(rest.split(",")[0])  # the rest opens the panel's body
    flat = " ".join(line.strip("│ ") for line in lines[:4])
    assert rest in flat  # every word of the title is there
    assert str(folder) in "".join(line.strip("│ ") for line in lines)  # a path too long for any line folds


def test_inspect_title_stays_whole_in_the_border_when_it_fits(cli, tiny_models, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    full = "".join(_title_parts(tiny_models["bert"]))
    result = cli("inspect", tiny_models["bert"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"╭─ {full} ─")


def test_a_long_source_opens_the_body_instead_of_being_cut(cli, config_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    base = config_folder("gpt2")
    folder = tmp_path / ("x" * (75 - len(str(tmp_path)) - 1))
    base.rename(folder)
    assert len(str(folder)) == 75  # longer than a subtitle of an 80-column panel holds (74), not than a line
    result = cli("inspect", folder)
    assert result.exit_code == 0, result.stderr
    assert any(line.strip("│ ") == str(folder) for line in result.stdout.splitlines())


# --------------------------------------------------------------------------------------------
# The attention heatmap's column numbers


def test_heatmap_column_numbers_stay_apart_past_nine(cli, tiny_models, monkeypatch):
    from llmscope.render.attention import CELL, LABEL_WIDTH

    monkeypatch.setenv("COLUMNS", "80")
    prompt = "The cat sat on the mat because it was tired, and the dog was not amused at all."
    data = cli("attention", prompt, "-m", tiny_models["llama"], "--device", "cpu", "--json").json()
    n = len(data["tokens"])
    shown = min(n, (80 - LABEL_WIDTH - 1) // CELL)
    assert shown >= 12
    result = cli("attention", prompt, "-m", tiny_models["llama"], "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    first_row = next(i for i, line in enumerate(lines) if line.startswith("  0 "))
    header = [line for line in lines[:first_row] if line.strip() and re.fullmatch(r"[\d ]+", line)]
    assert len(header) == 2
    numbers = {}
    for line in header:
        for match in re.finditer(r"\d+", line):
            numbers[int(match.group())] = match.end()
    assert sorted(numbers) == list(range(shown))  # each column's number, read as its own token
    assert all(end == LABEL_WIDTH + (j + 1) * CELL for j, end in numbers.items())  # over its own cell


def test_heatmap_with_few_columns_keeps_one_line_of_numbers():
    from llmscope.render.attention import LABEL_WIDTH, column_numbers

    assert [t.plain for t in column_numbers(4)] == [" " * LABEL_WIDTH + " 0 1 2 3"]
    two = [t.plain.split() for t in column_numbers(105)]
    assert two[0] == [str(j) for j in range(0, 105, 2)] and two[1] == [str(j) for j in range(1, 105, 2)]


# --------------------------------------------------------------------------------------------
# Special tokens among the next-token candidates


def _expected_special(tokenizer) -> set[int]:
    ids = {int(i) for i in tokenizer.all_special_ids}
    return ids | {int(i) for i, added in tokenizer.added_tokens_decoder.items() if added.special}


def test_special_is_set_for_exactly_the_tokenizers_special_ids(cli, im_end_chat):
    from transformers import AutoTokenizer

    folder = im_end_chat[0]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    expected = _expected_special(tokenizer)
    assert expected - set(tokenizer.all_special_ids), "added special tokens beyond all_special_ids"
    result = cli("next-token", "Hi there", "-m", folder, "--device", "cpu", "--rows", len(tokenizer), "--json")
    assert result.exit_code == 0, result.stderr
    candidates = result.json()["candidates"]
    assert len(candidates) == len(tokenizer)
    assert {c["id"] for c in candidates if c["special"]} == expected


def test_the_note_names_the_special_tokens_shown(cli, im_end_chat):
    folder = im_end_chat[0]
    top = cli("next-token", "Hi there", "-m", folder, "--device", "cpu", "--rows", "1", "--json").json()["candidates"]
    assert not top[0]["special"]
    plain = cli("next-token", "Hi there", "-m", folder, "--device", "cpu", "--rows", "1")
    assert plain.exit_code == 0, plain.stderr
    assert "special token" not in plain.stdout
    candidates = cli("next-token", "Hi there", "-m", folder, "--device", "cpu", "--rows", "1000",
                     "--json").json()["candidates"]
    special = [c["token"] for c in candidates if c["special"]]  # by rank
    assert len(special) > 3
    everything = cli("next-token", "Hi there", "-m", folder, "--device", "cpu", "--rows", "1000")
    assert everything.exit_code == 0, everything.stderr
    note = f"{', '.join(special[:3])} and {len(special) - 3} more are special tokens, not text"
    assert note in everything.stdout.splitlines()


@pytest.fixture(scope="module")
def image_marker(tiny_models, tmp_path_factory):
    """The tiny Llama with ``<start_of_image>`` added as a plain (not special) token, as Gemma 3's GGUF
    tokenizer has it, and its LM-head row set so it is the most likely token after "Hi there"."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    tok.add_tokens(["<start_of_image>"])
    marker = tok.convert_tokens_to_ids("<start_of_image>")
    assert marker not in _expected_special(tok)
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval()
    model.resize_token_embeddings(len(tok))
    ids = tok("Hi there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model.model(ids).last_hidden_state[0, -1]
        model.lm_head.weight[marker] = 100 * hidden / hidden.norm() ** 2  # its logit 100: far above the rest
    folder = tmp_path_factory.mktemp("tiny-llama-image-marker")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, marker


def test_a_marker_of_another_modality_is_special_and_explained(cli, image_marker):
    folder, marker = image_marker
    data = cli("next-token", "Hi there", "-m", folder, "--device", "cpu", "--json").json()
    top = data["candidates"][0]
    assert top["id"] == marker and top["token"] == "<start_of_image>" and top["special"]
    from transformers import AutoTokenizer

    expected = _expected_special(AutoTokenizer.from_pretrained(folder)) | {marker}
    assert {c["id"] for c in data["candidates"] if c["special"]} == expected & {c["id"] for c in data["candidates"]}
    result = cli("next-token", "Hi there", "-m", folder, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    table_end = max(i for i, line in enumerate(lines) if re.match(r"\s+\d+\s", line))
    notes = [line for line in lines[table_end + 1:] if "<start_of_image>" in line]
    assert notes == ["<start_of_image> marks image input (a multimodal vocabulary), not text"]


def test_a_special_candidate_is_marked_in_the_table():
    from rich.console import Console

    from llmscope.decoding.distribution import Candidate, Distribution
    from llmscope.decoding.sampling import settings_for
    from llmscope.render.next_token import candidate_table

    def candidate(token: str, rank: int, special: bool) -> Candidate:
        return Candidate(token=token, id=rank, prob=0.5, logprob=-0.7, rank=rank, cumulative_prob=0.5 * rank,
                         special=special)

    d = Distribution(position=0, candidates=[candidate("plain", 1, False), candidate("<eos>", 2, True)], entropy=0.7,
                     entropy_bits=1.0, entropy_temperature=None, top_k_kept=None, top_p_kept=None, sampling_kept=1,
                     shown=[])
    console = Console(record=True, width=80, color_system="truecolor", force_terminal=True)
    console.print(candidate_table(d, settings_for("greedy")))
    lines = console.export_text(styles=True).splitlines()
    special_background = "48;2;176;48;48"  # render.tokens.SPECIAL_STYLE, as tokenize marks special tokens
    assert special_background in next(line for line in lines if "<eos>" in line)
    assert special_background not in next(line for line in lines if "plain" in line)
