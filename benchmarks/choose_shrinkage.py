"""The DEQ denoisers' shrinkage mu, chosen on validation data under each loss.

    python benchmarks/choose_shrinkage.py [--steps 150] [--shrinkage 0.1 0.2 0.3 0.5]

Trains DEQ-ID (``methods/deq-id``, its ``denoiser.shrinkage`` set to each mu) on the CT task
of ``config/config.yaml`` with its training settings (batch 4, lr 1e-3, gradient fidelity
every 50 steps), seed 0, one thread, under ``sup`` and under ``ei``, each run in its own
process (``benchmarks/common.py``). The task is the benchmark's, simulated once by the
package's own code, with its training and validation splits alone: no test image is
generated. Each run's final weights are scored by the benchmark's stopping criterion
(:func:`deqbench.training.stopping_criterion`): under ``sup`` the validation PSNR, under
``ei`` -10 log10 of the ei loss on the validation measurements, the ground truth of no split
loaded (so no validation PSNR is shown for it).

A loss chooses the mu of highest criterion among its well-posed runs: no training step
stopped a fixed-point solve at its cap, and the spectral radius of the map at x* (measured
after step 0, which measures the untrained map) stayed below 1. The mu of highest criterion
alone is printed beside it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, THREADS, in_fresh_processes, print_provenance  # noqa: E402

from deqbench.config import load_yaml, training_settings  # noqa: E402
from deqbench.datasets import load_spec, prepare  # noqa: E402
from deqbench.io import load_torch, save_torch  # noqa: E402
from deqbench.losses import needs_ground_truth  # noqa: E402
from deqbench.measure import resolve_device  # noqa: E402
from deqbench.methods import build_model, load_method  # noqa: E402
from deqbench.tasks import load_task, simulate  # noqa: E402
from deqbench.training import stopping_criterion, train  # noqa: E402

METHOD = "deq-id"
LOSSES = ("sup", "ei")
SEED = 0


def simulated_ct(config: dict) -> dict:
    """The config's CT task data (:func:`deqbench.tasks.simulate`), its training and
    validation splits only: the workflow's images and measurements of them, as its test
    split is generated and measured after them."""
    task_cfg = config["tasks"]["ct"]
    spec = load_spec(ROOT / "datasets" / task_cfg["dataset"], config["datasets"][task_cfg["dataset"]])
    spec["splits"] = {split: spec["splits"][split] for split in ("train", "val")}
    return simulate(task_cfg, prepare(spec, config["seed"]), config["seed"])


def measure(shrinkage: float, loss: str, steps: int, data_file: str) -> dict:
    """Train DEQ-ID with this shrinkage under ``loss`` and score it on validation; under a
    loss without ground truth the task holds measurements alone."""
    torch.set_num_threads(THREADS)
    device = resolve_device("auto")
    config = load_yaml(ROOT / "config" / "config.yaml")
    settings = {**training_settings(config["training"], loss), "steps": steps, "validation_every": 0}
    data = load_torch(data_file)
    if not needs_ground_truth(loss):
        data["splits"] = {split: {"y": pair["y"]} for split, pair in data["splits"].items()}
    task = load_task("ct", config["tasks"]["ct"], data, noise_seed=SEED, device=device)
    method = load_method(ROOT / "methods" / METHOD, own={"denoiser.shrinkage": shrinkage})
    torch.manual_seed(SEED)
    model = build_model(method, task, device)
    with tempfile.TemporaryDirectory() as scratch:
        record = train(model, task, loss, settings, SEED, device, Path(scratch) / "checkpoint.pt")
    trained = [m for m in record["fidelity"] if m["step"] > 0]
    return {"criterion": stopping_criterion(model, task, loss, settings, device),
            "capped_steps": record.get("fixed_point_warning", 0), "steps": record["steps"],
            "spectral_radius_max": max(m["spectral_radius"] for m in trained),
            "gradient_cosine_min": min(m["gradient_cosine"] for m in trained),
            "train_time_s": record["train_time_s"]}


def well_posed(result: dict) -> bool:
    return result["capped_steps"] == 0 and result["spectral_radius_max"] < 1


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--shrinkage", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5], help="mu values")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as scratch:
        data_file = str(Path(scratch) / "ct.pt")
        save_torch(simulated_ct(load_yaml(ROOT / "config" / "config.yaml")), data_file)
        jobs = [(mu, loss, arguments.steps, data_file) for loss in LOSSES for mu in arguments.shrinkage]
        results = dict(zip([(mu, loss) for mu, loss, *_ in jobs], in_fresh_processes(measure, jobs), strict=True))
    print_provenance()
    print(f"cpu: {cpu_model()}")
    print(f"{METHOD} on the CT task of config/config.yaml (train and val splits), {arguments.steps} steps, "
          f"seed {SEED}, one thread; criterion: validation PSNR (sup), -10 log10 ei loss on the validation "
          "measurements (ei); capped: training steps that stopped a solve at its cap; radius and cosine: "
          "gradient fidelity after step 0")
    print(f"  {'mu':>5} {'loss':<5} {'criterion':>10} {'val PSNR':>9} {'capped':>9} {'radius max':>11} "
          f"{'cosine min':>11} {'train s':>8}")
    for (mu, loss), result in results.items():
        psnr = f"{result['criterion']:.2f}" if needs_ground_truth(loss) else "-"
        print(f"  {mu:>5} {loss:<5} {result['criterion']:>10.2f} {psnr:>9} "
              f"{result['capped_steps']:>4} /{result['steps']:>3} {result['spectral_radius_max']:>11.3f} "
              f"{result['gradient_cosine_min']:>11.5f} {result['train_time_s']:>8.0f}")
    for loss in LOSSES:
        runs = {mu: result for (mu, run_loss), result in results.items() if run_loss == loss}
        admissible = {mu: result for mu, result in runs.items() if well_posed(result)}
        chosen = max(admissible, key=lambda mu: admissible[mu]["criterion"]) if admissible else None
        print(f"  {loss}: chosen mu {chosen} (highest criterion among well-posed runs); "
              f"highest criterion alone: mu {max(runs, key=lambda mu: runs[mu]['criterion'])}")


if __name__ == "__main__":
    main()
