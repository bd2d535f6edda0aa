"""Benchmark: ``contributions`` against one plain forward pass of the same prompt, in the same run.

    python benchmarks/bench_contributions.py              # embedded Gemma 3 270M, --by head
    python benchmarks/bench_contributions.py --tokens 512 --repeat 5

Not part of the test suite. "contributions" is ``llmscope.contributions(..., by="head")`` on the loaded model
(its hooks, the frozen norms, every projection and the check); "forward" is ``model(input_ids).logits`` on the
same ids. Best of ``--repeat`` (default 5), alternating. Target (issue 31): contributions <= 1.5x the forward pass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _best import best_of  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=128, help="the prompt: README.md cut to this many tokens")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    import llmscope

    lm = llmscope.load(args.model, device="cpu", dtype="float32")
    source = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    ids = lm.tokenizer(source)["input_ids"][: args.tokens]
    prompt = lm.tokenizer.decode(ids[1:] if ids[0] == lm.tokenizer.bos_token_id else ids)
    n = len(lm.tokenizer(prompt)["input_ids"])

    def forward() -> None:
        with torch.no_grad():
            lm.model(input_ids=torch.tensor([lm.tokenizer(prompt)["input_ids"]]), use_cache=False)

    def contributions() -> None:
        llmscope.contributions(prompt, model=lm, by="head")

    modes = {"contributions": contributions, "forward": forward}
    best = best_of(modes, args.repeat)
    print(f"{lm.source.display_name}: {n} tokens, --by head, {torch.get_num_threads()} threads, best of {args.repeat}")
    for name, seconds in best.items():
        print(f"  {name:<14} {seconds:7.3f} s")
    print(f"  contributions / forward = {best['contributions'] / best['forward']:.2f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
