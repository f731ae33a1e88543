"""Rows over training seeds: the grand mean, the seed spread, and the worst seed's status."""

import numpy as np
import pandas as pd
import pytest

from deqbench.leaderboard import combine_seeds, undertraining

LIMITS = {"undertrained_gain_db": 0.1}


def seed_run(seed: int, offset: float, status: str = "ok", reason: str = ""):
    psnr = 25.0 + offset + np.arange(4.0)
    images = pd.DataFrame({"split": "test", "image": range(4), "psnr": psnr, "ssim": 0.5 + 0.01 * offset})
    row = {"task": "ct", "loss": "sup", "method": "m", "name": "M", "family": "deq", "status": status,
           "reason": reason, "seed": seed, "psnr": psnr.mean(), "ssim": 0.5, "ood_psnr": np.nan,
           "train_min": 1.0 + seed, "gradient_cosine_min": 0.999 - 0.001 * seed,
           "val_gain_last_quarter_db": 0.2 * seed}
    return row, images


def test_a_row_over_seeds_is_the_grand_mean_with_the_seed_spread():
    row = combine_seeds([seed_run(1, 1.0), seed_run(0, -1.0), seed_run(2, 0.0)], seed=0)
    assert row["status"] == "ok" and row["n_seeds"] == 3 and row["seeds"] == "0,1,2"
    assert row["psnr"] == pytest.approx(26.5) and row["psnr_seed_std"] == pytest.approx(1.0)
    assert row["psnr_low"] < 26.5 < row["psnr_high"]
    assert row["train_min"] == pytest.approx(2.0)  # costs: mean over seeds
    assert row["gradient_cosine_min"] == pytest.approx(0.997)  # reliability: the worst seed's
    assert undertraining(row, LIMITS)["undertrained"] == "yes"  # mean gain 0.2 dB > 0.1


def test_one_unreliable_seed_makes_the_row_unreliable_and_one_failed_seed_drops_its_numbers():
    unreliable = combine_seeds([seed_run(0, 0.0), seed_run(1, 0.0, "unreliable", "cosine 0.9")], seed=0)
    assert unreliable["status"] == "unreliable" and unreliable["reason"] == "seed 1: unreliable: cosine 0.9"
    assert unreliable["psnr"] == pytest.approx(26.5)  # its numbers stay visible
    failed = combine_seeds([seed_run(0, 0.0), (seed_run(1, 0.0, "failed", "diverged")[0], None)], seed=0)
    assert failed["status"] == "failed" and "seed 1: failed: diverged" in failed["reason"]
    assert "psnr" not in failed
