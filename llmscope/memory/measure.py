"""``memory --measure``: load the model, run exactly what was predicted, and report the peak.

The runs happen in a fresh Python process (``python -m llmscope.memory.measure``), so nothing this process
holds hides in its resident set. It imports torch and transformers, builds the model on the meta
device (its code and accelerate imported), runs a tiny matmul, reads its resident set (the
baseline), loads the weights alone (no tokenizer), then runs a random prompt of ``context`` tokens
at ``batch``, ``runs`` times: ``generate`` of one token, or one forward pass returning every
position's logits. Before each run, freed memory goes back to the system (``malloc_trim``).

On CUDA the peak is ``torch.cuda.max_memory_allocated`` after a reset (the weights are allocated
then, so they are in it). On the CPU it is the peak resident set (``VmHWM``, reset before each run
through ``/proc/self/clear_refs``) less the baseline: coarser, since it counts the runtime's own
memory besides the tensors. Every weight page is read in first (safetensors maps the file, and the
LM head would otherwise come in after the peak), and glibc's mmap threshold is fixed
(``MALLOC_MMAP_THRESHOLD_``, unless set already) so that freed tensors leave the resident set.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from llmscope import loading
from llmscope.errors import LlmscopeError, UsageError, literal
from llmscope.progress import reporter
from llmscope.units import fmt_bytes

if TYPE_CHECKING:  # pragma: no cover
    from llmscope.memory.report import MemoryReport

CPU_METHOD = "peak resident set over the resident set before the weights load (coarse)"
# glibc keeps freed blocks under its mmap threshold (which grows to 32 MiB as large blocks are freed)
# in its heap: on a small model that held 20-45% more than the tensors, and more with every run. The
# measuring process fixes the threshold at 64 KiB, so a freed tensor goes back to the system at once.
MMAP_THRESHOLD = 64 * 1024
CUDA_METHOD = "torch.cuda.max_memory_allocated after a reset, weights included"


@dataclasses.dataclass(frozen=True)
class Measurement:
    """The measured peak of the run ``memory`` predicted (the median when it ran several times)."""

    bytes: int
    runs: list[int]  # each run's peak
    loaded_bytes: int  # after the load, before the run: the weights as they sit in memory
    device: str  # 'cpu', 'cuda:0'
    method: str
    seconds: float  # the run itself (median), without the load
    mode: str
    context: int
    batch: int


def measure_device() -> str:
    """Where a measurement runs: the first CUDA GPU when there is one, else the CPU."""
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def check_measurable(report: MemoryReport, *, device: str, kv_dtype: str, several_devices: bool) -> None:
    """Refuse (exit 2) a measurement that cannot run what was predicted on this machine."""
    from llmscope.loading.ram_guard import available_ram

    if several_devices:
        raise UsageError("`measure=True` runs on one device", hint="leave out `gpus` and `cpu`")
    if kv_dtype != report.weights.dtype:
        raise UsageError(
            f"`measure=True` with `kv_dtype={kv_dtype}`: transformers' cache holds keys and values in "
            f"`dtype={report.weights.dtype}`", hint="leave out `kv_dtype`",
        )
    if device == "cpu" and (report.attn_implementation or "").startswith("flash_attention"):
        raise UsageError(f"`attn_implementation={report.attn_implementation}` needs a CUDA GPU",
                         hint="use sdpa or eager on the CPU")
    if device.startswith("cuda"):
        import torch

        free, where = int(torch.cuda.mem_get_info(int(device.split(":")[1]))[0]), f"free on {device}"
    else:
        free, where = available_ram(), "of RAM available"
    if report.needed_bytes > free:
        raise UsageError(
            f"`measure=True`: the prediction ({fmt_bytes(report.needed_bytes)}) does not fit this machine: "
            f"{fmt_bytes(free)} {where}",
            hint="measure a shorter `context` or a smaller `batch`",
        )


def measure_peak(
    spec: loading.LoadSpec,
    *,
    mode: str,
    context: int,
    batch: int,
    dtype: str,
    device: str,
    attn_implementation: str | None = None,
    runs: int = 1,
) -> Measurement:
    """Run the prediction ``runs`` times in one fresh process (one load); the median peak."""
    if runs < 1:
        raise UsageError(f"`runs={runs}`: must be at least 1")
    job = {
        "spec": dataclasses.asdict(spec), "mode": mode, "context": context, "batch": batch, "dtype": dtype,
        "device": device, "attn_implementation": attn_implementation, "runs": runs,
    }
    what = f"Measuring {mode} at {context:,} tokens x {batch} on {device}"
    with reporter().status(what):
        result = _run_child(job)
    return Measurement(
        bytes=int(statistics.median(result["peaks"])),
        runs=[int(p) for p in result["peaks"]],
        loaded_bytes=int(result["loaded"]),
        device=device,
        method=CUDA_METHOD if device.startswith("cuda") else CPU_METHOD,
        seconds=float(statistics.median(result["seconds"])),
        mode=mode,
        context=context,
        batch=batch,
    )


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="llmscope-measure-") as folder:
        job_path, out_path = os.path.join(folder, "job.json"), os.path.join(folder, "result.json")
        with open(job_path, "w") as handle:
            json.dump(job, handle)
        env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
        done = subprocess.run(
            [sys.executable, "-m", "llmscope.memory.measure", job_path, out_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False,
        )
        result = None
        if os.path.exists(out_path):
            with open(out_path) as handle:
                result = json.load(handle)
    if result is None or "error" in result:
        message = (result or {}).get("error") or _last_line(done.stderr) or f"exit status {done.returncode}"
        raise LlmscopeError(f"`measure=True`: the measuring process failed: {literal(message)}",
                            hint="run the same model with `context=16` to check that it loads")
    return result


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def measure_report(
    report: MemoryReport,
    model: loading.ModelLike,
    *,
    kv_dtype: str,
    several_devices: bool,
    runs: int = 1,
) -> MemoryReport:
    """The report with the measured peak of what it predicts (refused, exit 2, when it cannot run).

    MODEL (any form ``load`` takes) says where the weights come from; they load at the report's
    weights dtype on ``measure_device()``, whatever a LoadSpec's own dtype and device say."""
    if runs < 1:
        raise UsageError(f"`runs={runs}`: must be at least 1")
    device = measure_device()
    check_measurable(report, device=device, kv_dtype=kv_dtype, several_devices=several_devices)
    spec = loading.load_spec(model)
    context = report.kv_cache.context if report.kv_cache else report.context
    measurement = measure_peak(
        spec, mode=report.mode, context=context, batch=report.batch, dtype=report.weights.dtype, device=device,
        attn_implementation=report.attn_implementation, runs=runs,
    )
    return dataclasses.replace(report, measurement=measurement)


# --------------------------------------------------------------------------------------------
# The measuring process


def _status(field: str) -> int | None:
    """A line of /proc/self/status in bytes (VmRSS, VmHWM); None off Linux."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _resident() -> int:
    value = _status("VmRSS")
    if value is None:
        import psutil

        value = psutil.Process().memory_info().rss
    return int(value)


def _settle() -> None:
    """Collect garbage and give freed heap back, so the resident set is what is in use."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _PeakResident:
    """The peak resident set from now on: VmHWM after /proc/self/clear_refs, else sampled every ms."""

    def __init__(self) -> None:
        import threading

        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current resident set
            self._exact = _status("VmHWM") is not None
        except OSError:
            self._exact = False
        if not self._exact:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, _resident())

    def peak(self) -> int:
        if self._exact:
            return int(_status("VmHWM") or 0)
        self._stop.set()
        if self._thread:
            self._thread.join()
        return max(self._peak, _resident())


def _child(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    spec = loading.LoadSpec(**job["spec"])
    source = loading.source_of(spec)
    config = loading.load_config(source, trust_remote_code=spec.trust_remote_code)
    # the model's code, accelerate and safetensors imported and run once (on the meta device) before the
    # baseline: what loading imports is the process's, not the weights'
    loading.build_meta_model(config, trust_remote_code=spec.trust_remote_code)
    import accelerate  # noqa: F401
    import safetensors.torch  # noqa: F401
    device, cuda = job["device"], job["device"].startswith("cuda")
    torch.set_grad_enabled(False)
    torch.ones(64, 64) @ torch.ones(64, 64)  # thread pools and kernels up before the baseline
    _settle()
    baseline = _resident()
    lm = loading.load_model(
        source, device=device, dtype=job["dtype"], trust_remote_code=spec.trust_remote_code,
        attn_implementation=job["attn_implementation"], tokenizer=False,
    )
    if not cuda:  # safetensors maps the file: pages come in as they are read, the LM head's last of all
        for tensor in [*lm.model.parameters(), *lm.model.buffers()]:
            tensor.sum()  # every page resident now, as the prediction counts every weight
    vocab = int(lm.model.get_input_embeddings().num_embeddings)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (job["batch"], job["context"]), generator=generator).to(device)  # (batch, tokens)
    _settle()
    loaded = int(torch.cuda.memory_allocated()) if cuda else _resident() - baseline
    peaks, seconds = [], []
    for _ in range(job["runs"]):
        peak, took = _one_run(lm.model, ids, job["mode"], cuda)
        peaks.append(peak if cuda else peak - baseline)
        seconds.append(took)
    return {"peaks": peaks, "loaded": loaded, "seconds": seconds}


def _one_run(model: Any, ids: Any, mode: str, cuda: bool) -> tuple[int, float]:
    """One run's peak (allocated bytes on CUDA, the resident set on the CPU) and its seconds."""
    import torch

    _settle()  # what the last run freed goes back first
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        watch = _PeakResident()
    start = time.perf_counter()
    if mode == "generate":
        eos = model.generation_config.eos_token_id
        pad = eos[0] if isinstance(eos, list) else eos
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False,
                       pad_token_id=pad if pad is not None else 0)
    else:
        out = model(input_ids=ids)
        del out
    if cuda:
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated()), time.perf_counter() - start
    return watch.peak(), time.perf_counter() - start


def main(argv: list[str]) -> int:
    job_path, out_path = argv
    with open(job_path) as handle:
        job = json.load(handle)
    try:
        result = _child(job)
    except Exception as exc:  # reported to the parent, which raises it as an LlmscopeError
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    with open(out_path, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":  # pragma: no cover - the measuring process
    raise SystemExit(main(sys.argv[1:]))
