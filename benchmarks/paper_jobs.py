"""Peak memory and step time of every training run of the paper profile, at its sizes.

    python benchmarks/paper_jobs.py [--iterations 5] [--tasks ct mri]

The paper profile (``config/config.yaml`` overlaid by ``config/paper.yaml``: CT 128x128
with 50 views, 8x MRI 128x128 on 12 coils, DnCNN-17 denoisers with 64 features, batch 8)
is sized for a GPU. This measures what each of its training jobs needs on the device at
hand: the peak memory of a few training steps and their median step time, each run in its own process (``benchmarks/common.py``), every core used. CT images are
ellipse phantoms at the size LoDoPaB-CT is prepared at (256x256, simulated on the 2x finer
grid as in the benchmark), so that nothing is downloaded; MRI uses mni-brain, as the profile
does. The DEQs' solves are capped at ``--iterations`` forward and backward iterations
(tolerance zero): their memory does not depend on the iteration count
(``benchmarks/deq_training.py``), their time grows with it, so their step time is per
that many iterations, not per converged solve.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from snakemake.utils import update_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, in_fresh_processes, print_provenance  # noqa: E402

from deqbench.config import has_path  # noqa: E402
from deqbench.datasets import ellipse_phantom, load_spec, prepare, split_rng  # noqa: E402
from deqbench.denoisers import train_denoiser  # noqa: E402
from deqbench.measure import resolve_device  # noqa: E402
from deqbench.methods import build_model, discover, load_method  # noqa: E402
from deqbench.tasks import load_task, simulate  # noqa: E402
from deqbench.training import train  # noqa: E402

STEPS = 3  # the median step time passes over the first (warm-up) step; the peak includes Adam's state


def paper_config() -> dict:
    """``config/config.yaml`` overlaid by ``config/paper.yaml``, as Snakemake merges them."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    return config


def images(config: dict, task_name: str, count: int) -> dict[str, torch.Tensor]:
    """``count`` training and 2 validation images of the task's size class."""
    task_cfg = config["tasks"][task_name]
    if task_cfg["physics"] == "tomography":
        size = 2 * task_cfg["image_size"]
        phantoms = {}
        for split, n in (("train", count), ("val", 2)):
            rng = split_rng(0, split)
            phantoms[split] = torch.from_numpy(np.stack([ellipse_phantom(rng, size) for _ in range(n)])).float()
        return phantoms
    name = task_cfg["dataset"]
    spec = load_spec(ROOT / "datasets" / name, {**config["datasets"].get(name, {}),
                                                "splits": {"train": count, "val": 2, "test": 1}})
    return {split: data for split, data in prepare(spec, 0).items() if split != "test"}


def measure(task_name: str, method_name: str, loss: str, iterations: int) -> dict:
    config = paper_config()
    folder = ROOT / "methods" / method_name
    solves = {"forward.max_iter": iterations, "forward.tol": 0.0, "backward.max_iter": iterations,
              "backward.tol": 0.0}
    caps = {path: value for path, value in solves.items() if has_path(load_method(folder).hyperparameters, path)}
    method = load_method(folder, config["hyperparameters"], caps)
    settings = {**config["training"], "steps": STEPS, "checkpoint_every": STEPS}
    task_cfg = config["tasks"][task_name]
    device = resolve_device("auto")
    data = simulate(task_cfg, images(config, task_name, settings["batch_size"]), seed=0)
    task = load_task(task_name, task_cfg, data, noise_seed=0, device=device)
    torch.manual_seed(0)
    model = build_model(method, task, device)
    with tempfile.TemporaryDirectory() as scratch:
        if method.training == "denoiser":
            record = train_denoiser(model, task, loss, settings, 0, device)
        else:
            record = train(model, task, loss, settings, 0, device, Path(scratch) / "checkpoint.pt")
    return {"peak_mb": record["train_peak_memory_mb"], "memory_kind": record["memory_kind"],
            "step_s": record["step_time_median_s"], "parameters": record["parameters"]}


def runs(tasks: list[str]) -> list[tuple[str, str, str]]:
    """Every trained (task, method, loss) of the paper profile; PnP and RED share one
    denoiser training, listed once as ``pnp``."""
    methods, _ = discover(ROOT / "methods", paper_config()["hyperparameters"])
    return [(task, name, loss) for task in tasks for name, method in methods.items()
            if method.trainable and method.supports(task) and name != "red" for loss in method.losses]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5, help="DEQ forward and backward iterations")
    parser.add_argument("--tasks", nargs="+", default=["ct", "mri"])
    arguments = parser.parse_args(argv)
    jobs = [(*run, arguments.iterations) for run in runs(arguments.tasks)]
    results = in_fresh_processes(measure, jobs)
    config = paper_config()
    print_provenance(threads=torch.get_num_threads())
    print(f"paper profile, batch {config['training']['batch_size']}, shared hyperparameters "
          f"{config['hyperparameters']}, DEQ solves capped at {arguments.iterations} iterations; "
          f"peak memory ({results[0]['memory_kind']}) over {STEPS} training steps")
    print(f"  {'task':<5}{'method':<10}{'loss':<6}{'peak MB':>9}{'step s':>9}{'parameters':>12}")
    for (task, method, loss, _), result in zip(jobs, results, strict=True):
        label = "pnp/red" if method == "pnp" else method
        print(f"  {task:<5}{label:<10}{loss:<6}{result['peak_mb']:>9.0f}{result['step_s']:>9.2f}"
              f"{result['parameters']:>12,}")
    print(f"  ({os.cpu_count()} cores; a job trains {config['training']['steps']} steps)")


if __name__ == "__main__":
    main()
