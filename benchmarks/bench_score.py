"""Benchmark: ``score`` on a long text against raw forward passes over the same windows, with peak memory.

    python benchmarks/bench_score.py                               # embedded Gemma 3 270M, 20k tokens
    python benchmarks/bench_score.py --tokens 5000 --window 256 --threads 1 --repeat 1

Not part of the test suite. Each mode runs ``--repeat`` times (default 3), alternating, and the best
time of each counts (a shared machine's load comes and goes). "raw" is ``model(window_ids).logits`` for every window ``score`` reads
(the full window x vocab logits, nothing reduced); "score" is ``llmscope.score_text`` with the same
window and stride. Each runs in a fresh process; peak memory is its resident memory above what it
held after loading and a warm-up pass, sampled every 5 ms.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

ROOT = Path(__file__).resolve().parents[1]


class PeakRss:
    """Resident memory above the level at entry, sampled from /proc/self/statm."""

    def __enter__(self) -> PeakRss:
        import os

        self._page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def above(self) -> int:
        return self.peak - self.base


def long_text(tokenizer, tokens: int) -> str:
    """README.md repeated until it is ``tokens`` tokens long."""
    source = (ROOT / "README.md").read_text()
    text = source
    while len(tokenizer(text)["input_ids"]) < tokens:
        text += "\n" + source
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: tokens - 1]
    return tokenizer.decode(ids)


def run_one(args: argparse.Namespace) -> None:
    """One measurement in this process (a fresh one per mode, so freed memory of one run does not
    hide the other's peak): prints a line of key=value pairs for the parent."""
    import torch

    import llmscope
    from llmscope.forward import scoring

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = llmscope.load(args.model, device=args.device, dtype="float32")
    text = long_text(lm.tokenizer, args.tokens)
    ids = lm.tokenizer(text)["input_ids"]
    stride = args.stride or args.window
    plan = scoring.plan_windows(len(ids), args.window, stride)
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    warm = scoring.plan_windows(min(len(ids), args.window + 8), args.window, stride)
    with torch.inference_mode():  # warm-up: the first calls allocate and pick kernels
        for begin, end, _ in warm:
            lm.model(torch.tensor([ids[begin:end]], device=lm.device)).logits
    result = None
    with PeakRss() as memory:
        start = time.perf_counter()
        if args.only == "raw":
            with torch.inference_mode():
                for begin, end, _ in plan:
                    lm.model(torch.tensor([ids[begin:end]], device=lm.device)).logits
        else:
            result = scoring.score_text(text, lm, window=args.window, stride=stride)
        seconds = time.perf_counter() - start
    print(f"RESULT mode={args.only} seconds={seconds} peak={memory.above} tokens={len(ids)} windows={len(plan)} "
          f"vocab={vocab} threads={torch.get_num_threads()} model={lm.source.display_name.replace(' ', '_')} "
          f"ppl={result.perplexity if result else 0}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--stride", type=int, default=None, help="default: the window")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating; the best time counts")
    parser.add_argument("--only", choices=["raw", "score"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        run_one(args)
        return

    import subprocess

    from llmscope.units import fmt_bytes

    runs: dict[str, dict[str, str]] = {}
    child = [*sys.argv[1:], "--repeat", "1"]  # the last --repeat wins
    for _ in range(max(1, args.repeat)):  # raw, score, raw, score, ...: both see the same machine load
        for mode in ("raw", "score"):
            done = subprocess.run([sys.executable, __file__, *child, "--only", mode], capture_output=True,
                                  text=True, check=True)
            line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
            run = dict(pair.split("=", 1) for pair in line.split()[1:])
            if mode not in runs or float(run["seconds"]) < float(runs[mode]["seconds"]):
                runs[mode] = run
    raw, ours = runs["raw"], runs["score"]
    tokens, vocab = int(ours["tokens"]), int(ours["vocab"])
    print(f"model {ours['model']} on {args.device} (float32), torch threads {ours['threads']}")
    print(f"text {tokens:,} tokens, window {args.window}, stride {args.stride or args.window}: "
          f"{ours['windows']} forward passes; vocabulary {vocab:,} "
          f"(full logits of one window: {fmt_bytes(args.window * vocab * 4)})")
    for name, run in (("raw forward passes", raw), ("llmscope score", ours)):
        seconds = float(run["seconds"])
        print(f"{name:20s} {seconds:8.1f} s  {(tokens - 1) / seconds:8.1f} tokens/s  "
              f"peak +{fmt_bytes(int(run['peak']))}")
    print(f"score / raw speed: {float(raw['seconds']) / float(ours['seconds']):.2f}x   "
          f"perplexity {float(ours['ppl']):.3f}")


if __name__ == "__main__":
    main()
