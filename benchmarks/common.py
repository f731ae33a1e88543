"""Shared pieces of the benchmark scripts: a CT task, the methods' models with fixed
iteration counts, and one training measurement per fresh process.

Peak memory is measured by :class:`deqbench.measure.PeakMemory` (RSS increase on CPU,
``max_memory_allocated`` on GPU) over the training steps of a process that did nothing
else, so allocator caches of earlier measurements cannot hide memory. Times are the
median over the timed steps after one warm-up step, wall clock (:func:`deqbench.measure.timed`)
and CPU time of the process; they compare only within one run on one machine.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from deqbench.datasets import ellipse_phantom, split_rng
from deqbench.losses import build_loss, total_loss
from deqbench.measure import PeakMemory, resolve_device, timed
from deqbench.methods import import_model
from deqbench.provenance import provenance
from deqbench.tasks import Task, load_task, simulate

ROOT = Path(__file__).resolve().parents[1]
BATCH = 4
THREADS = 1  # every measured process


def ct_task(angles: int | None = None, images: int = 8) -> Task:
    """The default profile's CT task (``config/config.yaml``), optionally with other angles."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["tasks"]["ct"]
    config = {**config, **({"angles": angles} if angles else {})}
    rng = split_rng(0, "benchmark")
    phantoms = torch.from_numpy(np.stack([ellipse_phantom(rng, config["image_size"]) for _ in range(images)]))
    return load_task("ct", config, simulate(config, {"train": phantoms}, seed=0), noise_seed=0)


def hyperparameters(method: str) -> dict:
    return yaml.safe_load((ROOT / "methods" / method / "method.yaml").read_text())["hyperparameters"]


def build_method(method: str, hparams: dict, task) -> torch.nn.Module:
    """The model of ``methods/<method>/model.py`` with these hyperparameters."""
    return import_model(ROOT / "methods" / method).build(hparams, task)


def fixed_iterations(count: int) -> dict:
    """Solver settings that always run ``count`` iterations (tolerance zero)."""
    return {"tol": 0.0, "max_iter": count, "anderson": 5}


def train_steps(build, steps: int = 3, angles: int | None = None) -> dict:
    """Build a model with ``build(task)`` and time ``steps`` supervised training steps
    after one warm-up step; returns seconds (wall, CPU), peak MiB and the first step's
    parameter gradient."""
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    device = resolve_device("auto")
    task = ct_task(angles)
    model = build(task).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    terms = build_loss("sup", {}, torch.Generator())
    y, x = task.splits["train"]["y"][:BATCH].to(device), task.splits["train"]["x"][:BATCH].to(device)
    walls, cpus, gradient = [], [], None
    with PeakMemory(device) as memory:
        for step in range(steps + 1):
            cpu = time.process_time()
            with timed(device) as wall:
                optimizer.zero_grad(set_to_none=True)
                total_loss(terms, model(y, task.physics), x, y, task.physics, model).backward()
                if gradient is None:  # numpy: a tensor would cross processes by shared memory
                    gradient = torch.cat([p.grad.flatten().cpu() for p in model.parameters()
                                          if p.grad is not None]).numpy()
                optimizer.step()
            if step:  # the first step warms up
                walls.append(wall["seconds"])
                cpus.append(time.process_time() - cpu)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "peak_mb": memory.peak_mb, "memory_kind": memory.kind, "gradient": gradient,
            "stats": dict(getattr(model, "stats", {}))}


def in_fresh_processes(function, argument_lists: list[tuple]) -> list:
    """``function(*arguments)`` for each tuple, each call in a new process, one at a time."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.starmap(function, argument_lists, chunksize=1)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def print_provenance(threads: int = THREADS) -> None:
    """One line saying where and with what the numbers below were measured."""
    record = {**provenance(resolve_device("auto")), "threads": threads}
    print("provenance:", json.dumps(record, sort_keys=True))
