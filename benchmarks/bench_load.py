"""Model loading: llmscope against raw transformers, measured in one run on the same GGUF file.

    python benchmarks/bench_load.py            # the embedded Gemma 3 270M

Prints seconds and ratios: the first (converting) load, the cached load, and transformers'
own `from_pretrained(gguf_file=...)` that every load would cost without the cache. Each llmscope
load runs in a fresh process so imports are counted the same way for both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

LLMSCOPE = "import llmscope; llmscope.load({model!r}, device='cpu', dtype='float32')"
# The load itself, imports excluded (torch and transformers already imported): first, then again.
IN_PROCESS = """
import time, torch, transformers, llmscope
from llmscope import loading
start = time.perf_counter(); llmscope.load({model!r}, device='cpu', dtype='float32'); first = time.perf_counter() - start
start = time.perf_counter(); llmscope.load({model!r}, device='cpu', dtype='float32'); second = time.perf_counter() - start
print(first, second)
"""
RAW = """
import torch
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
path = Path({path!r})
AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
"""


def timed(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as cache:
        env = {"LLMSCOPE_CACHE": cache, "HF_HUB_OFFLINE": "1", "LLMSCOPE_NO_PROGRESS": "1"}
        done = subprocess.run([sys.executable, "-c", IN_PROCESS.format(model=model)], env={**os.environ, **env,
                              "LLMSCOPE_CACHE": cache + "/in-process"}, check=True, capture_output=True, text=True)
        first_in, second_in = map(float, done.stdout.split()[-2:])
        cold = timed(LLMSCOPE.format(model=model), env)
        warm = min(timed(LLMSCOPE.format(model=model), env) for _ in range(3))
        from llmscope.loading import gguf_cache
        from llmscope.loading.resolve import resolve

        os.environ.update(env)
        path = str(gguf_cache.gguf_file_for(resolve(model)).path)
        raw = timed(RAW.format(path=path), env)
    print(f"model: {model or 'embedded Gemma 3 270M'}; {os.cpu_count()} CPUs; times include imports")
    print(f"{'llmscope first load (converts)':38s} {cold:7.1f} s")
    print(f"{'llmscope cached load (best of 3)':38s} {warm:7.1f} s")
    print(f"{'transformers from_pretrained(gguf_file)':38s} {raw:7.1f} s")
    print(f"cached vs first load:        {cold / warm:5.1f}x faster (fresh processes, imports included)")
    print(f"load() alone, in one process: first {first_in:.1f} s, second {second_in:.1f} s: "
          f"{first_in / second_in:.1f}x faster (target >= 20x)")
    print(f"cached vs raw transformers:  {raw / warm:5.1f}x faster")


if __name__ == "__main__":
    main()
