"""Peak training memory of unrolling against DEQ-ID at the same number of iterations.

    python benchmarks/unrolled_memory.py [--steps 2]

On the CT task of ``config/config.yaml`` (batch 4, one thread, each configuration in its
own process, see ``benchmarks/common.py``): the unrolled method with K = 5, 10, 20
steps, backpropagated through all of them, against DEQ-ID running exactly K forward
and K backward iterations. Unrolling stores every step's activations, so its memory
should grow with K; the DEQ stores one step's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    build_method, fixed_iterations, hyperparameters, in_fresh_processes, print_provenance, train_steps)

ITERATIONS = (5, 10, 20)


def measure(kind: str, iterations: int, steps: int) -> dict:
    if kind == "unrolled":
        def build(task):
            return build_method("unrolled", {**hyperparameters("unrolled"), "iterations": iterations}, task)
    else:
        def build(task):
            solver = fixed_iterations(iterations)
            return build_method("deq-id", {**hyperparameters("deq-id"), "forward": solver, "backward": solver}, task)
    return train_steps(build, steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per configuration")
    steps = parser.parse_args(argv).steps
    jobs = [(kind, k, steps) for k in ITERATIONS for kind in ("unrolled", "deq-id")]
    results = dict(zip([(kind, k) for kind, k, _ in jobs], in_fresh_processes(measure, jobs), strict=True))
    print_provenance()
    print(f"CT task of config/config.yaml, batch 4, one thread, peak memory "
          f"({results[('deq-id', ITERATIONS[0])]['memory_kind']}) over {steps + 1} training steps")
    print(f"  {'K':>3} {'unrolled MB':>12} {'DEQ-ID MB':>10} {'memory ratio':>13} {'time ratio (cpu)':>17}")
    for k in ITERATIONS:
        unrolled, deq = results[("unrolled", k)], results[("deq-id", k)]
        print(f"  {k:>3} {unrolled['peak_mb']:>12.1f} {deq['peak_mb']:>10.1f} "
              f"{unrolled['peak_mb'] / deq['peak_mb']:>13.2f} {unrolled['cpu_s'] / deq['cpu_s']:>17.2f}")
    growth = (results[("unrolled", ITERATIONS[-1])]["peak_mb"] - results[("unrolled", ITERATIONS[0])]["peak_mb"])
    print(f"  unrolled memory per extra iteration: {growth / (ITERATIONS[-1] - ITERATIONS[0]):.1f} MB")


if __name__ == "__main__":
    main()
