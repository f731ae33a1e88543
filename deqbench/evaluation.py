"""Per-image quality, test time and memory of a reconstruction method.

Metric convention (one, for every method and task): images are scored as real
``H x W`` arrays (the modulus for MRI), the estimate is *not* clipped, and the data
range is that of the ground truth, ``max(x) - min(x)`` (dival's convention):

.. math::  \\mathrm{PSNR}(x, \\hat x) = 10 \\log_{10} \\frac{(\\max x - \\min x)^2}{\\tfrac1n\\|x - \\hat x\\|^2}

SSIM is scikit-image's ``structural_similarity`` with the same data range and its
defaults (7 x 7 uniform window, K1 = 0.01, K2 = 0.03).

Test time is measured per image (batch of one) after ``warmup`` untimed passes, with
CUDA synchronisation on GPU.

The first test images also get their ``equivariance_error`` (:mod:`deqbench.equivariance`),
computed after the timed and memory-measured passes.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deqbench.equivariance import equivariance_errors, rotation_angles
from deqbench.measure import PeakMemory, timed
from deqbench.tasks import Task, magnitude
from deqbench.training import check_output

SCORED_SPLITS = ("test", "ood")


def data_range(truth: np.ndarray) -> float:
    return float(truth.max() - truth.min())


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(truth, estimate, data_range=data_range(truth)))


def ssim(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(structural_similarity(truth, estimate, data_range=data_range(truth)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, device: torch.device, warmup: int = 1,
             seed: int = 0) -> tuple[list[dict], dict]:
    """Score ``model`` on the test and out-of-distribution splits.

    Returns one row per image (split, index, psnr, ssim, seconds, any fixed-point
    statistics the model exposes as ``model.stats`` and, for the first test images,
    the equivariance error under rotations drawn from ``seed``) and the evaluation summary
    (peak memory over the whole evaluation, the rotation angles).
    """
    model.eval()
    rows = []
    with PeakMemory(device) as memory:
        for split in SCORED_SPLITS:
            if split not in task.splits:
                continue
            xs, ys = task.splits[split]["x"], task.splits[split]["y"].to(device)
            for _ in range(min(warmup, len(ys))):
                model(ys[:1], task.physics)
            for index in range(len(ys)):
                with timed(device) as clock:
                    estimate = model(ys[index:index + 1], task.physics)
                check_output(estimate, torch.Size((1, *xs.shape[1:])))
                truth = magnitude(xs[index:index + 1])[0].numpy().astype(np.float64)
                est = magnitude(estimate.float().cpu())[0].numpy().astype(np.float64)
                rows.append({
                    "split": split, "image": index,
                    "psnr": psnr(truth, est), "ssim": ssim(truth, est),
                    "seconds": clock["seconds"],
                    **{f"fp_{k}": v for k, v in (getattr(model, "stats", None) or {}).items()},
                })
    errors = equivariance_errors(model, task, device, seed)
    for row in rows:
        if row["split"] == "test" and row["image"] < len(errors):
            row["equivariance_error"] = errors[row["image"]]
    return rows, {"test_peak_memory_mb": memory.peak_mb, "memory_kind": memory.kind,
                  "equivariance_rotations_deg": rotation_angles(seed).tolist()}
