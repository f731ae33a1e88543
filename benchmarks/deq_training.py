"""Training cost of DEQ-ID, DEQ-JFB and ODER on the CT task, measured in one run.

    python benchmarks/deq_training.py [--steps 3]

Prints, for supervised training steps (batch 4, one thread, each configuration in its
own process, see ``benchmarks/common.py``):

1. this package's DEQ-ID and DEQ-JFB against the same DEQs built from deepinv
   (``optim.GD`` with the ``RED`` prior, ``DEQConfig``, Anderson acceleration), at equal
   iteration counts (20 forward, 20 backward): step time and peak memory ratios, and the
   relative error of each first gradient against the implicit gradient solved to a
   relative residual of 1e-7 (the same maths, so the implicit ones should be close);
2. the same at the methods' configured tolerances, deepinv stopping its forward solve at
   the forward tolerance (``early_stop``), which it also applies to the backward solve;
3. DEQ-ID peak memory with 100 against 20 forward iterations (should stay flat);
4. ODER step time relative to DEQ-JFB (both Jacobian-free, so only the data term
   differs) as the CT angles grow, at 10 forward iterations: the saving ODER's subsampling
   can give, which nears the measurement fraction drawn only where the data term
   dominates the step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from deepinv.optim import GD, AndersonAccelerationConfig, DEQConfig
from deepinv.optim.data_fidelity import L2
from deepinv.optim.prior import RED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    build_method, fixed_iterations, hyperparameters, in_fresh_processes, print_provenance, relative_difference,
    train_steps)

from deqbench.tasks import initial_reconstruction  # noqa: E402

ANGLES = (30, 60, 90, 180)
DEEPINV_ANDERSON_EPS = 1e-4  # DEQConfig's default eps_backward; absolute, where deqbench's is relative


class DeepinvDEQ(torch.nn.Module):
    """The DEQ methods' fixed point, gradients and denoiser, through deepinv's optim:
    ``GD`` on :math:`\\tfrac12\\|Ax - y\\|^2 + \\tau\\,\\mathrm{RED}` is the same step."""

    def __init__(self, task, hparams: dict, forward: dict, backward: dict, jacobian_free: bool):
        super().__init__()
        self.step = build_method("deq-id", {**hparams, "forward": forward, "backward": backward}, task).step
        denoiser = self.step.denoiser
        self.optimiser = GD(
            data_fidelity=L2(), prior=RED(denoiser=lambda x, sigma: denoiser(x)), stepsize=self.step.step,
            lambda_reg=self.step.regularization, max_iter=forward["max_iter"], thres_conv=forward["tol"],
            early_stop=True, custom_init=initial_reconstruction, trainable_params=[],
            anderson_acceleration=AndersonAccelerationConfig(history_size=forward["anderson"], beta=1.0,
                                                             eps=DEEPINV_ANDERSON_EPS) if forward["anderson"] else None,
            DEQ=DEQConfig(jacobian_free=jacobian_free, anderson_acceleration_backward=backward["anderson"] > 0,
                          history_size_backward=backward["anderson"], beta_backward=1.0,
                          eps_backward=DEEPINV_ANDERSON_EPS, max_iter_backward=backward["max_iter"]))

    def forward(self, y, physics):
        with self.step.one_call():
            return self.optimiser(y, physics)


def measure(kind: str, forward: dict | None, backward: dict | None, steps: int, angles: int | None = None) -> dict:
    """One configuration: ``kind`` is ``deq-id``, ``deq-jfb``, ``oder`` or ``deepinv-id`` /
    ``deepinv-jfb``; ``forward`` / ``backward`` override the method's solver settings."""
    method = "deq-jfb" if kind.endswith("jfb") else "oder" if kind == "oder" else "deq-id"
    hparams = hyperparameters(method)
    forward = forward or hparams["forward"]
    backward = backward or hparams.get("backward") or hyperparameters("deq-id")["backward"]
    if kind.startswith("deepinv"):
        def build(task):
            return DeepinvDEQ(task, hparams, forward, backward, jacobian_free=kind.endswith("jfb"))
    else:
        def build(task):
            return build_method(method, {**hparams, "forward": forward, "backward": backward}, task)
    return train_steps(build, steps, angles)


def row(name: str, result: dict, reference: dict | None = None) -> str:
    line = f"  {name:<34} {result['wall_s']:7.3f} {result['cpu_s']:7.3f} {result['peak_mb']:8.1f}"
    if reference is not None:
        line += (f"   {result['wall_s'] / reference['wall_s']:5.2f} {result['cpu_s'] / reference['cpu_s']:5.2f}"
                 f" {result['peak_mb'] / reference['peak_mb']:5.2f}")
    return line


HEADER = f"  {'':<34} {'wall s':>7} {'cpu s':>7} {'peak MB':>8}   ratios (wall, cpu, memory)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    steps = parser.parse_args(argv).steps
    equal, short = fixed_iterations(20), fixed_iterations(10)
    jobs = {
        "deq-id equal": ("deq-id", equal, equal, steps),
        "deepinv-id equal": ("deepinv-id", equal, equal, steps),
        "deq-jfb equal": ("deq-jfb", equal, equal, steps),
        "deepinv-jfb equal": ("deepinv-jfb", equal, equal, steps),
        "oder equal": ("oder", equal, equal, steps),
        "deq-id converged": ("deq-id", equal, {"tol": 1e-7, "max_iter": 400, "anderson": 5}, 1),
        "deq-id configured": ("deq-id", None, None, steps),
        "deepinv-id configured": ("deepinv-id", None, None, steps),
        "deq-jfb configured": ("deq-jfb", None, None, steps),
        "deepinv-jfb configured": ("deepinv-jfb", None, None, steps),
        "deq-id 100 forward": ("deq-id", fixed_iterations(100), equal, steps),
        **{f"{kind} {angles} angles": (kind, short, short, steps, angles)
           for angles in ANGLES for kind in ("deq-jfb", "oder")},
    }
    results = dict(zip(jobs, in_fresh_processes(measure, list(jobs.values())), strict=True))
    print_provenance()
    print(f"CT task of config/config.yaml, batch 4, one thread, median of {steps} steps after a warm-up; "
          f"memory kind: {results['deq-id equal']['memory_kind']}")

    print("\n1. Equal iterations (20 forward, 20 backward, Anderson 5); ratios against deepinv's DEQConfig")
    print(HEADER)
    for ours, theirs in (("deq-id", "deepinv-id"), ("deq-jfb", "deepinv-jfb")):
        print(row(f"{theirs} (DEQConfig)", results[f"{theirs} equal"]))
        print(row(f"{ours} (deqbench.solvers)", results[f"{ours} equal"], results[f"{theirs} equal"]))
    print(row("oder, against deq-jfb (same gradient)", results["oder equal"], results["deq-jfb equal"]))
    reference = results["deq-id converged"]
    print(f"  first-gradient relative error against the converged implicit gradient "
          f"({reference['stats']['backward_iterations']:.0f} backward iterations to 1e-7):")
    for name in ("deq-id", "deepinv-id", "deq-jfb", "deepinv-jfb"):
        error = relative_difference(results[f"{name} equal"]["gradient"], reference["gradient"])
        print(f"    {name:<12} {error:.2e}")

    print("\n2. Configured tolerances (ours: forward/backward tol of method.yaml; deepinv: early stop "
          "at the forward tol for both solves)")
    print(HEADER)
    for ours, theirs in (("deq-id", "deepinv-id"), ("deq-jfb", "deepinv-jfb")):
        print(row(f"{theirs} (DEQConfig)", results[f"{theirs} configured"]))
        print(row(f"{ours} (deqbench.solvers)", results[f"{ours} configured"], results[f"{theirs} configured"]))
        stats = results[f"{ours} configured"]["stats"]
        print(f"  {'':<34} last step: {stats.get('forward_iterations', 0):.0f} forward, "
              f"{stats.get('backward_iterations', 0):.0f} backward iterations")

    print("\n3. DEQ-ID memory, 100 against 20 forward iterations (20 backward)")
    print(HEADER)
    print(row("deq-id, 20 forward", results["deq-id equal"]))
    print(row("deq-id, 100 forward", results["deq-id 100 forward"], results["deq-id equal"]))

    print("\n4. ODER against DEQ-JFB (both Jacobian-free) as the CT angles grow (10 forward iterations)")
    print(HEADER)
    fraction = hyperparameters("oder")["subsampling"]["fraction"]
    for angles in ANGLES:
        print(row(f"deq-jfb, {angles} angles", results[f"deq-jfb {angles} angles"]))
        print(row(f"oder, {angles} angles (fraction {fraction:g})", results[f"oder {angles} angles"],
                  results[f"deq-jfb {angles} angles"]))


if __name__ == "__main__":
    main()
