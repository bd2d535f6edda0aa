"""Decode speed: llmscope against raw transformers, measured in one run on the same model and dtype.

    python benchmarks/bench_decode.py [--model MODEL] [--tokens 64] [--dtype float32]

Prints, each as a ratio against `model.generate` timed in the same process:
- `generate --strategy greedy` tokens per second (target: within 5% of model.generate);
- `next-token --steps N` (KV-cached stepping) against generating N tokens;
- `generate --no-kv-cache`: the speed-up the KV cache brings (the same tokens, without then with it);
- decode speed as a fraction of the memory-bandwidth bound: each new token reads every weight once,
  so tokens/s can be at most (measured copy bandwidth) / (bytes of weights).
Greedy runs are forced to the same length by comparing tokens per second, not total time.
"""

from __future__ import annotations

import argparse
import os
import time

PROMPT = "The history of the printing press begins"


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def copy_bandwidth(torch, device: str, size_bytes: int = 512 * 2**20) -> float:
    """Bytes per second of a large tensor copy (each byte read once and written once)."""
    src = torch.empty(size_bytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    seconds = min(best_of(1, lambda: dst.copy_(src)) for _ in range(5))
    return 2 * size_bytes / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    import llmscope

    lm = llmscope.load(args.model, device=args.device, dtype=args.dtype)
    n = args.tokens
    ids = lm.tokenizer(PROMPT, return_tensors="pt").to(lm.device)

    def raw_generate():
        with torch.no_grad():
            lm.model.generate(**ids, do_sample=False, max_new_tokens=n, min_new_tokens=n)

    raw_seconds = best_of(3, raw_generate)
    raw_tps = n / raw_seconds

    ours = []
    for _ in range(3):
        result = llmscope.generate(PROMPT, model=lm, strategy="greedy", max_new_tokens=n)
        ours.append(result.num_tokens / result.total_time)
    ours_tps = max(ours)

    steps_seconds = best_of(3, lambda: llmscope.predict_next_token(PROMPT, model=lm, steps=n))

    # generate --no-kv-cache: the same tokens without the cache, then with it (the learner's demonstration)
    demo = llmscope.generate(PROMPT, model=lm, strategy="greedy", max_new_tokens=n, kv_cache=False).kv_cache_comparison

    weight_bytes = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    bandwidth = copy_bandwidth(torch, lm.device)
    bound_tps = bandwidth / weight_bytes

    print(f"model: {lm.source.display_name}, {lm.dtype} on {lm.device}, {os.cpu_count()} CPUs, {n} new tokens")
    print(f"{'model.generate (greedy)':34s} {raw_tps:8.1f} tokens/s")
    print(f"{'llmscope generate --strategy greedy':34s} {ours_tps:8.1f} tokens/s   "
          f"{ours_tps / raw_tps:5.2f}x of model.generate (target >= 0.95)")
    print(f"{'llmscope next-token --steps':34s} {steps_seconds:8.2f} s        "
          f"{steps_seconds / raw_seconds:5.2f}x the time of generating {n} tokens")
    print(f"{'generate --no-kv-cache':34s} {demo.uncached_tokens_per_second:8.1f} tokens/s without, "
          f"{demo.cached_tokens_per_second:.1f} with the cache: {demo.speedup:.2f}x faster with it"
          f"{'' if demo.same_token_ids else ' (the tokens differ!)'}")
    print(f"{'weights read per token':34s} {weight_bytes / 2**20:8.1f} MiB; copy bandwidth "
          f"{bandwidth / 2**30:.1f} GiB/s -> bound {bound_tps:.1f} tokens/s")
    print(f"{'decode speed / bandwidth bound':34s} {ours_tps / bound_tps:8.2f} (llmscope), "
          f"{raw_tps / bound_tps:.2f} (model.generate)")


if __name__ == "__main__":
    main()
