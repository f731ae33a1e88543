"""The CT operator as a sparse matrix against deepinv's Tomography, in one run.

    python benchmarks/ct_operator.py

On the default CT task (64 x 64, 30 views), one thread, batch 4: the time of A and A^T,
and of a training step of DEQ-ID and of unrolling (supervised), with deepinv's
``Tomography`` (A by rotation and interpolation, A^T by autograd of A) and with
:class:`deqbench.tasks.MatrixTomography` (the same map as a sparse matrix); the ratios
(matrix / deepinv) and how far the step's gradient moves (the two operators agree to
about 2e-7, the iterations amplify it). Each training measurement runs in its own
process (``benchmarks/common.py``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (build_method, ct_task, hyperparameters, in_fresh_processes, print_provenance,  # noqa: E402
                    relative_difference, train_steps)

from deqbench.tasks import tomography  # noqa: E402

REPEATS = 20


def median_ms(function) -> float:
    function()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def with_deepinv_operator(task):
    """The task with deepinv's Tomography (and the same noise model) as its physics."""
    reference = tomography(task.config["angles"], task.image_size)
    reference.noise_model = task.physics.noise_model
    task.physics = reference
    return task


def measure(method: str, deepinv: bool) -> dict:
    def build(task):
        if deepinv:
            with_deepinv_operator(task)
        return build_method(method, hyperparameters(method), task)

    return train_steps(build)


def main() -> None:
    torch.set_num_threads(1)
    print_provenance()
    task = ct_task()
    reference = tomography(task.config["angles"], task.image_size)
    x = task.splits["train"]["x"][:4]
    y = task.physics.A(x)
    print("default CT task, batch 4, one thread, median of", REPEATS, "calls (ms)")
    for name, fast, slow in (("A", lambda: task.physics.A(x), lambda: reference.A(x)),
                             ("A^T", lambda: task.physics.A_adjoint(y), lambda: reference.A_adjoint(y))):
        matrix, deepinv = median_ms(fast), median_ms(slow)
        print(f"  {name:4s} deepinv {deepinv:7.2f}  matrix {matrix:6.2f}  ratio {matrix / deepinv:.3f}")
    print("training step (sup), median of 3 after a warm-up (s)")
    for method in ("deq-id", "unrolled"):
        slow, fast = in_fresh_processes(measure, [(method, True), (method, False)])
        print(f"  {method:9s} deepinv {slow['wall_s']:6.3f}  matrix {fast['wall_s']:6.3f}  "
              f"ratio {fast['wall_s'] / slow['wall_s']:.3f}  "
              f"first-gradient relative difference {relative_difference(fast['gradient'], slow['gradient']):.1e}")


if __name__ == "__main__":
    main()
