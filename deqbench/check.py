"""Check a method folder before a full run: ``deqbench-check methods/<name>``.

For every task kind the method supports, on a tiny simulated problem: the folder
validates, ``build`` returns a module, the output has the ground truth's shape, two
training steps under each declared loss run forward and backward with finite losses,
and the same seed gives the same output twice. Each failure says what to fix.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from deqbench.config import ConfigError
from deqbench.datasets import ellipse_phantom, split_rng
from deqbench.methods import MethodError, build_model, check_output, load_method
from deqbench.tasks import Task, draw_mri_mask, load_task, simulate

TINY_TASKS = {
    "ct": {"physics": "tomography", "image_size": 32, "angles": 12, "noise_sigma": 0.01},
    "mri": {"physics": "mri", "image_size": 32, "acceleration": 4, "center_fraction": 0.08, "noise_sigma": 0.01},
}
TINY_TRAINING = {"steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 2,
                 "ei_weight": 1.0, "ei_rotation_multiples": 1.0, "denoiser_sigma": 0.05}


def tiny_task(name: str, seed: int = 0) -> Task:
    cfg = TINY_TASKS[name]
    rng = split_rng(seed, "check")
    images = torch.from_numpy(np.stack([ellipse_phantom(rng, cfg["image_size"]) for _ in range(4)]))
    data = simulate(cfg, {"train": images, "val": images[:2], "test": images[:2]}, seed)
    return load_task(name, cfg, data, noise_seed=seed)


def output_once(method, task_name: str, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    task = tiny_task(task_name, seed)
    model = build_model(method, task).eval()
    with torch.no_grad():
        return model(task.splits["test"]["y"], task.physics)


def check(folder: str | Path) -> list[str]:
    """Problems found in a method folder, as messages that say what to fix (empty: all good)."""
    from deqbench.training import train  # imported late: torch set-up cost

    try:
        method = load_method(folder)
    except ConfigError as err:
        return [f"{err} (see workflow/schemas/method.schema.yaml)"]
    problems = []
    tasks = [t for t in TINY_TASKS if method.supports(t)]
    if not tasks:
        return [f"{folder}/method.yaml: 'tasks' names none of the benchmark's tasks {list(TINY_TASKS)}"]
    for task_name in tasks:
        task = tiny_task(task_name)
        expected = task.splits["test"]["x"].shape
        try:
            first = output_once(method, task_name)
            check_output(first, expected)
        except MethodError as err:
            problems.append(f"[{task_name}] {err}: model(y, physics) must return {tuple(expected)}")
            continue
        if not torch.equal(first, output_once(method, task_name)):
            problems.append(f"[{task_name}] two builds with the same seed give different outputs: "
                            "draw randomness from torch's seeded RNG or a seeded torch.Generator")
        for loss in (method.losses if method.trainable and method.training == "end-to-end" else []):
            with tempfile.TemporaryDirectory() as scratch:
                try:
                    with contextlib.redirect_stderr(io.StringIO()):  # progress bars
                        train(build_model(method, task), task, loss, TINY_TRAINING, 0,
                              torch.device("cpu"), Path(scratch) / "checkpoint.pt")
                except MethodError as err:
                    problems.append(f"[{task_name}, {loss}] training failed: {err}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="method folders, e.g. methods/my-method")
    args = parser.parse_args(argv)
    failed = 0
    for folder in args.folders:
        problems = check(folder)
        print(f"{folder}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"  - {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
