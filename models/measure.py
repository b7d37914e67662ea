"""Measuring what a run costs: device, FLOPs, memory and reachable matmul throughput.

These figures feed the economics (price per GPU hour) and the "achieved fraction of peak"
column, so they are measured on the machine that ran the work, never assumed.
"""

from __future__ import annotations

import platform
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

_SAMPLE_EVERY_S = 0.02


def resolve_device(preference: str) -> str:
    """ "auto" -> "cuda" when available else "cpu"; "cuda" without CUDA raises ValueError."""
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cpu":
        return "cpu"
    if preference == "cuda" or preference.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"CUDA was requested but no CUDA device is available: {preference=}")
        return preference
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {preference=}")


def device_name(device: str) -> str:
    """Human-readable name of the device ("NVIDIA H100 80GB HBM3", "AMD EPYC 7763 ...")."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return _cpu_name()


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def flops_per_row(model: torch.nn.Module, example_inputs: tuple) -> float:
    """Forward FLOPs per row, counted by torch's FlopCounterMode on one example batch.

    The row count is the first dimension of the first tensor input (None inputs allowed, as
    FT-Transformer takes None for an absent feature kind).
    """
    tensors = [x for x in example_inputs if isinstance(x, torch.Tensor)]
    if not tensors or tensors[0].shape[0] == 0:
        raise ValueError("example_inputs needs at least one tensor with at least one row")
    was_training = model.training
    model.eval()
    try:
        # Autograd stays on: FlopCounterMode's module tracker fails under no_grad /
        # inference_mode in torch 2.13; only the forward pass runs, so only it is counted.
        with FlopCounterMode(display=False) as counter:
            model(*example_inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / tensors[0].shape[0]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (the kernel's own high-water mark)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


class PeakMemory:
    """Context manager: peak RSS while the block ran (sampled every 20 ms) and CUDA peak.

    ru_maxrss never goes down, so it cannot tell what one block needed once the process has
    been bigger before; a sampler thread can. `peak_rss_bytes` includes what the process held
    on entry (`start_rss_bytes`); `peak_cuda_bytes` is None off CUDA.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.start_rss_bytes = 0
        self.peak_rss_bytes = 0
        self.peak_cuda_bytes: int | None = None
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.start_rss_bytes = self.peak_rss_bytes = self._process.memory_info().rss
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(torch.device(self.device))
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_EVERY_S):
            self._update()

    def _update(self) -> None:
        self.peak_rss_bytes = max(self.peak_rss_bytes, self._process.memory_info().rss)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._update()
        if self.device.startswith("cuda"):
            self.peak_cuda_bytes = int(torch.cuda.max_memory_allocated(torch.device(self.device)))


def matmul_flops_per_second(
    threads: int = 1,
    n: int = 1024,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Measured dense fp32 matmul FLOP/s: the practical peak a model's FLOP/s is compared to.

    `clock=time.process_time` measures per CPU-second instead of per wall second: on a shared
    machine that keeps the peak and the model's rate comparable (CPU only; GPU work does not
    show in process time).
    """
    if threads < 1 or n < 16:
        raise ValueError(f"need threads >= 1 and n >= 16, got {threads=} {n=}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        _timed_matmuls(a, b, 2, clock)  # warm-up: allocator, BLAS thread pools, CUDA context
        reps, elapsed = 1, 0.0
        while elapsed < 0.3:
            reps *= 2
            elapsed = _timed_matmuls(a, b, reps, clock)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * n**3 * reps / elapsed


def _timed_matmuls(
    a: torch.Tensor, b: torch.Tensor, reps: int, clock: Callable[[], float]
) -> float:
    _sync(a.device)
    start = clock()
    for _ in range(reps):
        torch.mm(a, b)
    _sync(a.device)
    return clock() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
