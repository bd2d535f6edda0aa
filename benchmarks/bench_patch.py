"""Benchmark: ``patch`` (batched patched runs) against one forward pass per patch, in the same run.

    python benchmarks/bench_patch.py                 # embedded Gemma 3 270M, --site resid
    python benchmarks/bench_patch.py --site heads --repeat 2

Not part of the test suite. "patch" is ``llmscope.patch`` (its clean and corrupt runs, its identity checks
and every layer x position cell); "one by one" is the same cells, each its own forward pass of the corrupt
prompt with one hook putting back one clean residual (the least code a notebook writes). Best of
``--repeat`` (default 2), alternating. Target (issue 31): patch at least 3x faster at ``--site resid``.
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
    parser.add_argument("--clean", default="The Eiffel Tower is in")
    parser.add_argument("--corrupt", default="The Colosseum is in")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import torch

    import llmscope
    from llmscope.forward.anatomy import anatomy

    lm = llmscope.load(args.model, device="cpu", dtype="float32")
    parts = anatomy(lm.model)
    clean, bad = (lm.tokenizer(t)["input_ids"] for t in (args.clean, args.corrupt))
    blocks = [parts.module(lm.model, b.name) for b in parts.blocks]
    with torch.no_grad():
        hidden = lm.model(input_ids=torch.tensor([clean]), output_hidden_states=True).hidden_states

    def one_by_one() -> None:
        for layer, block in enumerate(blocks):
            for position in range(len(clean)):
                def put(_m, a, layer=layer, position=position):
                    h = a[0].clone()
                    h[0, position] = hidden[layer][0, position]
                    return (h, *a[1:])

                handle = block.register_forward_pre_hook(put)
                with torch.no_grad():
                    lm.model(input_ids=torch.tensor([bad]), use_cache=False)
                handle.remove()

    def batched() -> None:
        llmscope.patch(args.clean, model=lm, corrupt=args.corrupt)

    modes = {"patch": batched, "one by one": one_by_one}
    best = best_of(modes, args.repeat, warm=False)
    cells = len(blocks) * len(clean)
    print(f"{lm.source.display_name}: {len(clean)} tokens, {len(blocks)} layers, {cells} cells (--site resid), "
          f"{torch.get_num_threads()} threads, best of {args.repeat}")
    for name, seconds in best.items():
        print(f"  {name:<11} {seconds:7.2f} s")
    print(f"  one by one / patch = {best['one by one'] / best['patch']:.2f}x faster (target >= 3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
