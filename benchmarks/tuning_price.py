"""The price of tuning without ground truth, from a finished run's results.

    python benchmarks/tuning_price.py [RESULTS_DIR [CONFIG ...]]
    # default: results, config/config.yaml (a profile's overlays follow it, as in Snakemake)

For every tuned method with an ``ei`` row (TV, PnP-PGD, RED-GD) on every task, the test
PSNR of the model at the hyperparameters its ``ei`` tuning chose from held-out
measurements against the same model at those validation PSNR would choose (computed here
with the validation ground truth, which the benchmark's ``ei`` jobs never load), and the
``sup`` row (PSNR tuning; for PnP and RED also a denoiser trained on the target's clean
images) for scale. Mean PSNR over the test images, training seed 0 (the ``ei`` denoisers'
weights are the run's).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch
from snakemake.utils import update_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_provenance  # noqa: E402

from deqbench.config import ROOT, load_yaml  # noqa: E402
from deqbench.io import load_torch, read_json  # noqa: E402
from deqbench.methods import build_model, discover  # noqa: E402
from deqbench.tasks import load_task  # noqa: E402
from deqbench.tuning import mean_psnr, select  # noqa: E402

CPU = torch.device("cpu")


def price(results: Path, task_name: str, task_cfg: dict, method, seed: int) -> dict:
    """One (task, method): the test PSNR at the held-out choice and at the PSNR choice."""
    run = results / "runs" / task_name / method.name / "ei" / f"seed{seed}"
    task = load_task(task_name, task_cfg, load_torch(results / "tasks" / f"{task_name}.pt"), noise_seed=seed)
    weights = load_torch(run / "model.pt") if method.trainable else None

    def build(chosen: dict) -> torch.nn.Module:
        model = build_model(method, task, CPU, chosen)
        if weights is not None:
            model.load_state_dict(weights)
        return model.eval()

    held_out = read_json(run / "tuning.json")["chosen"]
    by_psnr = select(build, method.tuning, task.splits["val"], task.physics, CPU, loss="sup")["chosen"]
    sup = pd.read_csv(results / "runs" / task_name / method.name / "sup" / f"seed{seed}" / "images.csv")
    test = task.splits["test"]
    return {"task": task_name, "method": method.name, "held-out choice": held_out, "PSNR choice": by_psnr,
            "test PSNR, held-out choice": mean_psnr(build(held_out), test, task.physics, CPU),
            "test PSNR, PSNR choice": mean_psnr(build(by_psnr), test, task.physics, CPU),
            "sup row test PSNR": sup.loc[sup["split"] == "test", "psnr"].mean()}


def main(argv: list[str]) -> None:
    results = Path(argv[0] if argv else "results")
    config = {}
    for path in argv[1:] or [ROOT / "config" / "config.yaml"]:
        update_config(config, load_yaml(path))
    methods, _ = discover(ROOT / "methods", config.get("hyperparameters"))
    torch.set_num_threads(1)
    rows = [price(results, task, cfg, method, config["seeds"][0]) for task, cfg in config["tasks"].items()
            for method in methods.values()
            if method.tuning and "ei" in method.losses and (results / "runs" / task / method.name / "ei").exists()]
    table = pd.DataFrame(rows)
    table["price dB"] = table["test PSNR, PSNR choice"] - table["test PSNR, held-out choice"]
    print_provenance(threads=1)
    print(f"results: {results.resolve()}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main(sys.argv[1:])
