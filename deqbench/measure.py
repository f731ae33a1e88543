"""Time, memory and device.

Peak memory is ``torch.cuda.max_memory_allocated`` on GPU. On CPU it is the peak
resident set size of the process *above its size when the region started*: the
kernel's high-water mark is reset through ``/proc/self/clear_refs`` (Linux >= 4.0) and
read from ``VmHWM``; where that is not possible, the process-lifetime
``ru_maxrss`` is reported instead and ``memory_kind`` says so.
"""

from __future__ import annotations

import os
import resource
import time
from contextlib import contextmanager

import torch

from deqbench.gpus import claim_gpu

def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, on a GPU of its own (:func:`deqbench.gpus.claim_gpu`);
    an explicit device must exist."""
    if name == "auto":
        if claim_gpu(torch.cuda.device_count()) is None:
            return torch.device("cpu")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' was asked for but CUDA is not available")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of a code region in MiB; use as ``with PeakMemory(device) as mem:``."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = float("nan")
        self.kind = ""

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.kind = "cuda_max_allocated"
            return self
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self._base = _status_kib("VmRSS")
            self.kind = "rss_increase" if self._base is not None else "ru_maxrss"
        except OSError:
            self._base = None
            self.kind = "ru_maxrss"
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self.kind == "rss_increase":
            self.peak_mb = (_status_kib("VmHWM") - self._base) / 1024
        else:
            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(device: torch.device):
    """Wall time (``seconds``) and the process's CPU time (``cpu_seconds``) of a region,
    synchronising CUDA on entry and exit. On a CPU shared with other work, wall time
    measures the load as well; CPU time (all threads of this process) does not, and with
    one thread a job it is the compute time of a CPU run. On GPU it is not."""
    box = {}
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    yield box
    synchronize(device)
    box["seconds"] = time.perf_counter() - start
    box["cpu_seconds"] = time.process_time() - cpu_start
