"""Image quality metrics: the registry every part of the benchmark reads.

A metric is defined once, as a :class:`Metric` passed to :func:`register`. Evaluation
scores every test and out-of-distribution image with it; the leaderboard averages it over
seeds and test images with a two-level bootstrap interval (column ``<name>``, interval
``<name>_ci95``) and shows it under its ``label`` with its ``digits``; the report page, its
quality figure, the long-format scores table and the claims' metrics follow. One metric,
:data:`RANKED` (PSNR), decides the paired comparisons and ranks: a leaderboard ranks on
one thing, fixed before the run. Supervised validation and tuning select on PSNR too
(:func:`deqbench.tuning.mean_psnr`).

Images are scored as real ``H x W`` float64 arrays (the modulus for MRI, :func:`scorable`),
the estimate is *not* clipped, and the data range is that of the ground truth,
``max(x) - min(x)`` (dival's convention):

.. math::  \\mathrm{PSNR}(x, \\hat x) = 10 \\log_{10} \\frac{(\\max x - \\min x)^2}{\\tfrac1n\\|x - \\hat x\\|^2},
           \\qquad \\mathrm{NMSE}(x, \\hat x) = \\frac{\\|x - \\hat x\\|^2}{\\|x\\|^2}

SSIM is scikit-image's ``structural_similarity`` with the same data range and its
defaults (7 x 7 uniform window, K1 = 0.01, K2 = 0.03). NMSE is fastMRI's, computed as the
square of scikit-image's ``normalized_root_mse`` (Euclidean normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from deqbench.tasks import magnitude


@dataclass(frozen=True)
class Metric:
    """``score(truth, estimate) -> float`` on real H x W float64 arrays; ``label``: the
    leaderboard header; ``higher_is_better``: its direction, shown with it; ``digits``:
    decimals in the Markdown and on the page."""

    name: str
    label: str
    score: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    digits: int


METRICS: dict[str, Metric] = {}
RANKED = "psnr"


def register(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (in display order); its name must be new."""
    if metric.name in METRICS:
        raise ValueError(f"metric '{metric.name}' is registered already")
    METRICS[metric.name] = metric
    return metric


def scorable(images: torch.Tensor) -> np.ndarray:
    """``images`` (batch, channels, H, W) as the float64 (batch, H, W) arrays metrics score."""
    return magnitude(images.detach().float().cpu()).numpy().astype(np.float64)


def score_all(truth: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Every registered metric of one image."""
    return {name: float(metric.score(truth, estimate)) for name, metric in METRICS.items()}


def data_range(truth: np.ndarray) -> float:
    return float(truth.max() - truth.min())


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(truth, estimate, data_range=data_range(truth)))


def ssim(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(structural_similarity(truth, estimate, data_range=data_range(truth)))


def nmse(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(normalized_root_mse(truth, estimate, normalization="euclidean") ** 2)


register(Metric("psnr", "PSNR (dB)", psnr, higher_is_better=True, digits=2))
register(Metric("ssim", "SSIM", ssim, higher_is_better=True, digits=3))
register(Metric("nmse", "NMSE", nmse, higher_is_better=False, digits=4))
