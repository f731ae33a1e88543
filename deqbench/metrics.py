"""Image quality metrics, one convention for every method and task.

Images are scored as real ``H x W`` arrays (the modulus for MRI), the estimate is *not*
clipped, and the data range is that of the ground truth, ``max(x) - min(x)`` (dival's
convention):

.. math::  \\mathrm{PSNR}(x, \\hat x) = 10 \\log_{10} \\frac{(\\max x - \\min x)^2}{\\tfrac1n\\|x - \\hat x\\|^2}

SSIM is scikit-image's ``structural_similarity`` with the same data range and its
defaults (7 x 7 uniform window, K1 = 0.01, K2 = 0.03).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def data_range(truth: np.ndarray) -> float:
    return float(truth.max() - truth.min())


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(truth, estimate, data_range=data_range(truth)))


def ssim(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(structural_similarity(truth, estimate, data_range=data_range(truth)))
