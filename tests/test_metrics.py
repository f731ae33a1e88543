"""The metric convention, checked against hand computations."""

import numpy as np
import pytest

from deqbench.metrics import psnr, ssim


def test_psnr_uses_ground_truth_range():
    truth = np.array([[0.2, 0.4], [0.6, 1.0]])
    estimate = truth + np.array([[0.1, -0.1], [0.0, 0.0]])
    mse = (0.1**2 + 0.1**2) / 4
    assert psnr(truth, estimate) == pytest.approx(10 * np.log10(0.8**2 / mse))


def test_psnr_does_not_clip_the_estimate():
    truth = np.linspace(0, 1, 64).reshape(8, 8)
    assert psnr(truth, truth + 0.5) == pytest.approx(10 * np.log10(1 / 0.25))


def test_ssim_is_one_for_identical_images_and_symmetric_range():
    rng = np.random.default_rng(0)
    truth = rng.random((16, 16))
    noisy = truth + 0.1 * rng.standard_normal((16, 16))
    assert ssim(truth, truth) == pytest.approx(1.0)
    assert 0 < ssim(truth, noisy) < 1
    # The same pair scored in another unit scales the data range with it.
    assert ssim(truth * 7, noisy * 7) == pytest.approx(ssim(truth, noisy))
