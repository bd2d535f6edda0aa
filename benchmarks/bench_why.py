"""Benchmark: ``why`` with integrated gradients against the same work done by hand, in the same run.

    python benchmarks/bench_why.py                      # embedded Gemma 3 270M, 32 steps
    python benchmarks/bench_why.py --steps 64 --repeat 5

Not part of the test suite. Three ways to integrate the same path, each run ``--repeat`` times (default
3), alternating, best time counted (a shared machine's load comes and goes):

- "why": ``llmscope.why(..., method="integrated-gradients", steps=N)`` on the loaded model (its checks
  included: f at the input and the baseline, the inputs_embeds check);
- "passes": N plain forward+backward passes of the target's log-probability on ``inputs_embeds``, in
  one batch of N rows (the least work any implementation can do);
- "captum": Captum's ``LayerIntegratedGradients`` on the embedding layer, called directly with the same
  steps and the same ids.

Targets (issue 30): why <= 1.3x the passes, <= 1.1x Captum direct.
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
    parser.add_argument("--model", default=None, help="default: the embedded Gemma 3 270M")
    parser.add_argument("--prompt", default="The capital of France is")
    parser.add_argument("--target", default=" Paris")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch
    from captum.attr import LayerIntegratedGradients

    import llmscope

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = llmscope.load(args.model, device="cpu", dtype="float32")
    model, tok = lm.model, lm.tokenizer
    ids = tok(args.prompt)["input_ids"]
    target = tok(args.target, add_special_tokens=False)["input_ids"]
    full = torch.tensor([ids + target[:-1]])
    base = torch.tensor([[ids[0]] + [tok.pad_token_id or 0] * (len(ids) - 1) + target[:-1]])
    n, m = len(ids), len(target)
    embed = model.get_input_embeddings()
    for p in model.parameters():
        p.requires_grad_(False)

    def logprob(logits):
        logp = torch.log_softmax(logits[:, n - 1:].float(), -1)
        return sum(logp[:, k, t] for k, t in enumerate(target))

    def run_why():
        return llmscope.why(args.prompt, model=lm, target=args.target, steps=args.steps)

    def run_passes():
        e = embed(full).detach().expand(args.steps, -1, -1).clone().requires_grad_(True)
        logprob(model(inputs_embeds=e, use_cache=False).logits).sum().backward()
        return e.grad

    def run_captum():
        lig = LayerIntegratedGradients(lambda x: logprob(model(input_ids=x, use_cache=False).logits), embed)
        return lig.attribute(full, baselines=base, n_steps=args.steps)

    modes = {"why": run_why, "passes": run_passes, "captum": run_captum}
    best = best_of(modes, args.repeat)
    print(f"{lm.source.display_name}: {n} prompt tokens, target {args.target!r} ({m} token), {args.steps} steps, "
          f"{torch.get_num_threads()} threads, best of {args.repeat}")
    for name, seconds in best.items():
        print(f"  {name:<7} {seconds:7.3f} s")
    print(f"  why / passes = {best['why'] / best['passes']:.2f}x (target <= 1.3x)")
    print(f"  why / captum = {best['why'] / best['captum']:.2f}x (target <= 1.1x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
