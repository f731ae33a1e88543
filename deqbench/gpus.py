"""One GPU per job when Snakemake runs several GPU jobs on one machine.

Snakemake's ``gpu`` resource bounds how many GPU jobs run at once but does not say
which GPU each job gets. A job therefore claims the first free slot ``i`` by taking an
exclusive ``flock`` on ``<lock_dir>/gpu-<i>.lock``, held until the process exits (so
a crashed job frees its slot), and sets ``CUDA_VISIBLE_DEVICES=i`` before CUDA starts.
A ``CUDA_VISIBLE_DEVICES`` already set (by SLURM, or by hand) is respected.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

_held: list = []  # open lock files: closing one would free its slot


class NoFreeGPU(RuntimeError):
    """More GPU jobs than GPUs: bound them with ``--resources gpu=<count>``."""


def claim_gpu(count: int, lock_dir: str | Path | None = None) -> str | None:
    """Pin this process to a free GPU among ``count``; returns ``CUDA_VISIBLE_DEVICES``.

    Returns ``None`` (and changes nothing) when there is no GPU.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return os.environ["CUDA_VISIBLE_DEVICES"]
    if count == 0:
        return None
    lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / f"deqbench-gpus-{os.getuid()}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        handle = open(lock_dir / f"gpu-{index}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        return str(index)
    raise NoFreeGPU(f"all {count} GPUs are taken by other jobs: run Snakemake with "
                    f"--resources gpu={count} so that no more GPU jobs start than there are GPUs")
