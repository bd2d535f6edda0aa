"""Benchmark: ``compare`` (greedy and sampling rows batched, one forward pass per step) against
running the same strategies one by one with ``generate``, on the same loaded model in one run.

    python benchmarks/bench_compare.py                      # the embedded Gemma 3 270M
    python benchmarks/bench_compare.py --model gpt2 --max-new-tokens 64 --repeat 3

Not part of the test suite. Prints the best time of each over --repeat runs and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    parser.add_argument("--prompt", default="Once upon a time, in a small village by the sea,")
    parser.add_argument("--strategies", default="greedy,sample,top-k,top-p,min-p,typical")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    import llmscope
    from llmscope import decoding
    from llmscope.decoding import sampling

    lm = llmscope.load(args.model, device=args.device)
    specs = sampling.parse_strategy_list(args.strategies, max_new_tokens=args.max_new_tokens, seed=args.seed)
    print(f"model {lm.source.display_name} on {lm.device} ({lm.dtype}), torch threads {torch.get_num_threads()}")
    print(f"strategies {', '.join(s.label for s in specs)}; {args.max_new_tokens} new tokens each")
    # warm-up (first calls allocate and pick kernels)
    decoding.compare(args.prompt, model=lm, strategies=specs[:1], max_new_tokens=4)

    batched, one_by_one, same = [], [], True
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = decoding.compare(args.prompt, model=lm, strategies=specs, max_new_tokens=args.max_new_tokens)
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        rows = [decoding.generate(args.prompt, model=lm, strategy=s.strategy,
                                  temperature=s.temperature if s.do_sample else None, top_k=s.top_k, top_p=s.top_p,
                                  min_p=s.min_p, typical_p=s.typical_p,
                                  num_beams=s.num_beams if s.strategy == "beam" else None,
                                  max_new_tokens=s.max_new_tokens, seed=s.seed) for s in specs]
        one_by_one.append(time.perf_counter() - start)
        same = same and all(a.token_ids == b.token_ids for a, b in zip(result.results, rows))
    tokens = sum(r.num_tokens for r in result.results)
    b, o = min(batched), min(one_by_one)
    print(f"compare (one batch):  {b:7.2f} s  {tokens / b:7.1f} tokens/s")
    print(f"one by one:           {o:7.2f} s  {tokens / o:7.1f} tokens/s")
    print(f"ratio one-by-one / compare: {o / b:.2f}x   rows identical: {same}")


if __name__ == "__main__":
    main()
