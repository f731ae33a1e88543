"""The metric convention, checked against hand computations, and the metric registry."""

import numpy as np
import pandas as pd
import pytest
import torch

from deqbench import evaluation, report
from deqbench.check import tiny_task
from deqbench.leaderboard import combine_seeds, load_protocol, markdown, quality_columns, run_row, with_all_columns
from deqbench.metrics import METRICS, Metric, nmse, psnr, ssim

GATES = load_protocol()["gates"]


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


def test_nmse_is_fastmris_squared_error_over_the_truths_energy():
    truth = np.array([[0.2, 0.4], [0.6, 1.0]])
    estimate = truth + np.array([[0.1, -0.1], [0.0, 0.0]])
    assert nmse(truth, estimate) == pytest.approx(0.02 / (0.04 + 0.16 + 0.36 + 1.0))
    assert nmse(truth, truth) == 0.0


class Adjoint(torch.nn.Module):
    def forward(self, y, physics):
        return physics.A_adjoint(y)


def test_a_metric_registered_alone_reaches_evaluation_leaderboard_markdown_and_page(monkeypatch):
    """Registering is all it takes: no other file names the metric."""
    toy = Metric("toy", "largest error", lambda t, e: float(np.abs(t - e).max()), higher_is_better=False, digits=3)
    monkeypatch.setitem(METRICS, "toy", toy)
    rows, _ = evaluation.evaluate(Adjoint(), tiny_task("ct"), torch.device("cpu"), warmup=0)
    images = pd.DataFrame(rows)
    assert {"psnr", "ssim", "nmse", "toy"} <= set(images) and (images["toy"] > 0).all()
    run = {"task": "ct", "loss": "sup", "method": "m", "name": "M", "family": "post-processing", "status": "ok"}
    per_seed = [({**run_row(run, images, {}, GATES), "seed": seed}, images) for seed in (0, 1)]
    row = combine_seeds(per_seed, seed=0)
    assert row["toy"] == pytest.approx(images.loc[images["split"] == "test", "toy"].mean())
    assert np.isfinite(row["toy_ci95"]) and "toy" in quality_columns()
    table = pd.DataFrame([{**row, "protocol_version": 3}])
    assert "largest error ↓" in markdown(table)
    assert "largest error ↓" in report.leaderboard_table(with_all_columns(table), {})
