"""The speed a person feels (issue 18): quick looks against the bare library doing the same, side by side.

    python benchmarks/bench_latency.py [--rounds 5] [--skip-first-gguf]

Each row runs fresh processes, alternating ours and the baseline so that a slow spell of the
machine hits both, and prints the best of ROUNDS for each and their ratio:
- warm `tokenize` on a folder model (a small BPE folder, and a folder holding the embedded Gemma's
  262k tokenizer) against `import transformers; AutoTokenizer.from_pretrained(FOLDER)` (target <= 0.7x);
- warm `tokenize` on the embedded model against the same on its cached tokenizer folder (<= 0.7x);
- first `inspect` of the embedded GGUF with an empty llmscope cache against
  `AutoConfig.from_pretrained(folder, gguf_file=)` (<= 0.6x; best of 2, the baseline is slow);
- warm `inspect` of the cached GGUF and of a folder against `import torch, transformers` (<= 1.6x);
- `inspect` and `memory` of a config declaring 100,000 layers: seconds (in seconds, not a ratio).
`generate` against `model.generate` is benchmarks/bench_decode.py; `--help` and TAB are
benchmarks/bench_startup.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = "The quick brown fox jumps over the lazy dog. naïve café 東京 😀"
LLMSCOPE = [sys.executable, "-m", "llmscope"]


def run(args: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr.decode()[-2000:]}")
    return seconds


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def side_by_side(rounds: int, ours, baseline) -> tuple[float, float]:
    """Best of ROUNDS of each, alternating. ``ours``/``baseline``: () -> seconds."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(ours())
        theirs.append(baseline())
    return min(mine), min(theirs)


def row(name: str, ours: float, base: float, target: str) -> None:
    print(f"{name:58s} {ours:7.2f} s {base:7.2f} s {ours / base:6.2f}x  {target}")


def small_bpe_folder(root: Path) -> Path:
    """A small byte-level BPE model folder (config.json + tokenizer), as tests/conftest.py builds one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [TEXT, "the cat sat on the mat", "def f(x): return x ** 2"] * 50
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder = root / "small-bpe"
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    wrapped.save_pretrained(folder)
    GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=len(wrapped)).save_pretrained(folder)
    return folder


def embedded_folders(root: Path) -> tuple[Path, Path, Path]:
    """The embedded GGUF, its cached tokenizer folder, and a model folder holding that tokenizer."""
    from llmscope.loading.gguf_cache import embedded_gguf_path, ensure_gguf_stage, gguf_file_for
    from llmscope.loading.resolve import resolve

    source = resolve(None)
    gguf = gguf_file_for(source)
    tokenizer = ensure_gguf_stage(gguf, "tokenizer", source)
    folder = root / "gemma-tokenizer"
    shutil.copytree(tokenizer, folder)
    shutil.copy(ensure_gguf_stage(gguf, "config", source) / "config.json", folder / "config.json")
    return embedded_gguf_path(), tokenizer, folder


def deep_config(root: Path) -> Path:
    folder = root / "deep"
    folder.mkdir()
    config = json.loads((Path(__file__).parent.parent / "tests/data/configs/gpt2.json").read_text())
    config["n_layer"] = 100_000
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-first-gguf", action="store_true", help="skip the slow first-inspect row")
    args = parser.parse_args()
    rounds = args.rounds
    print(f"{os.cpu_count()} CPUs; best of {rounds} fresh processes each, alternating")
    print(f"{'':58s} {'llmscope':>9s} {'baseline':>9s} {'ratio':>7s}  target")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = small_bpe_folder(root)
        gguf_path, gemma_tokenizer, gemma_folder = embedded_folders(root)
        auto_tok = "from transformers import AutoTokenizer; AutoTokenizer.from_pretrained({!r})"
        for name, folder in (("small BPE", small), ("Gemma 262k", gemma_folder)):
            tokenize = [*LLMSCOPE, "tokenize", TEXT, "-m", str(folder), "--json"]
            run(tokenize)  # warm: the tokenizer cache is filled once
            ours, base = side_by_side(rounds, lambda: run(tokenize), lambda: run(python(auto_tok.format(str(folder)))))
            row(f"warm tokenize -m FOLDER ({name}) / AutoTokenizer", ours, base, "<= 0.7x")
        tokenize = [*LLMSCOPE, "tokenize", TEXT, "--json"]
        run(tokenize)
        ours, base = side_by_side(rounds, lambda: run(tokenize), lambda: run(python(auto_tok.format(str(gemma_tokenizer)))))
        row("warm tokenize (embedded) / AutoTokenizer on its folder", ours, base, "<= 0.7x")

        if not args.skip_first_gguf:
            def first_inspect() -> float:
                empty = root / f"cache-{time.monotonic_ns()}"
                return run([*LLMSCOPE, "inspect", str(gguf_path), "--json"], env={**os.environ, "LLMSCOPE_CACHE": str(empty)})

            auto_config = f"from transformers import AutoConfig; AutoConfig.from_pretrained({str(gguf_path.parent)!r}, gguf_file={gguf_path.name!r})"
            ours, base = side_by_side(min(rounds, 2), first_inspect, lambda: run(python(auto_config)))
            row("first inspect FILE.gguf (empty cache) / AutoConfig(gguf_file=)", ours, base, "<= 0.6x")

        bare = python("import torch, transformers")
        for name, model in (("cached GGUF (embedded)", []), ("folder (gpt2 config)", [str(Path(__file__).parent.parent / "tests/data/configs")])):
            inspect = [*LLMSCOPE, "inspect", *model, "--json"]
            if model:  # a folder holding one config.json: tests/data/configs has several, so copy one
                folder = root / "gpt2-folder"
                folder.mkdir(exist_ok=True)
                shutil.copy(Path(model[0]) / "gpt2.json", folder / "config.json")
                inspect = [*LLMSCOPE, "inspect", str(folder), "--json"]
            run(inspect)
            ours, base = side_by_side(rounds, lambda: run(inspect), lambda: run(bare))
            row(f"warm inspect {name} / import torch, transformers", ours, base, "<= 1.6x")

        deep = deep_config(root)
        for command in ("inspect", "memory"):
            seconds = run([*LLMSCOPE, command, str(deep), "--json"])
            print(f"{command + ' of 100,000 layers':58s} {seconds:7.2f} s {'':>9s} {'':>7s}  seconds (was 114 s)")


if __name__ == "__main__":
    main()
