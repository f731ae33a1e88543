"""Rows over training seeds: the grand mean, the seed spread, and the worst seed's status."""

import numpy as np
import pandas as pd
import pytest

from deqbench.leaderboard import combine_seeds, undertraining

LIMITS = {"undertrained_gain_db": 0.1}
GATE = {"min_median_gradient_cosine": 0.99, "max_spectral_radius": 1.0, "max_capped_share": 0.01}


def seed_run(seed: int, offset: float, status: str = "ok", reason: str = ""):
    psnr = 25.0 + offset + np.arange(4.0)
    images = pd.DataFrame({"split": "test", "image": range(4), "psnr": psnr, "ssim": 0.5 + 0.01 * offset})
    row = {"task": "ct", "loss": "sup", "method": "m", "name": "M", "family": "deq", "status": status,
           "reason": reason, "seed": seed, "psnr": psnr.mean(), "ssim": 0.5, "ood_psnr": np.nan,
           "train_min": 1.0 + seed, "gradient_cosine_min": 0.999 - 0.001 * seed,
           "val_trend_last_quarter_db": 0.2 * seed}
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


def test_the_last_quarter_trend_fits_every_checkpoint_so_one_noisy_end_does_not_decide_it():
    from deqbench.leaderboard import last_quarter_trend

    rising = [{"step": s, "val_psnr": 20 + 2 * s / 800} for s in range(40, 801, 40)]
    assert last_quarter_trend(rising, 800) == pytest.approx(0.5)  # from step 600 to 800
    # the learning curve of a plateaued run: a dip at step 600 makes the two ends 0.14 dB apart
    plateau = [{"step": s, "val_psnr": v} for s, v in
               zip(range(600, 801, 40), [22.96, 23.18, 23.12, 23.15, 23.08, 23.10], strict=True)]
    assert plateau[-1]["val_psnr"] - plateau[0]["val_psnr"] == pytest.approx(0.14)
    assert last_quarter_trend(plateau, 800) == pytest.approx(0.0614, abs=1e-3)
    assert undertraining({"val_trend_last_quarter_db": last_quarter_trend(plateau, 800)}, LIMITS)["undertrained"] == "no"
    assert np.isnan(last_quarter_trend(plateau[-1:], 800)) and np.isnan(last_quarter_trend([], 800))
    every_25 = [{"step": s, "val_psnr": 20.0 + 0.01 * s} for s in (25, 50, 75, 100, 125, 150)]
    assert last_quarter_trend(every_25, 150) == pytest.approx(0.5)  # spans from step 100, not 125


def test_the_gradient_gate_takes_the_median_step_and_the_worst_step_stays_on_the_row():
    from deqbench.leaderboard import unreliability
    from deqbench.training import fidelity_summary

    def measured(*cosines, converged=True):
        return [{"gradient_cosine": c, "reference_converged": converged, "exact_gradient_claimed": True,
                 "spectral_radius": 0.9, "gradient_relative_error": 0.0} for c in cosines]

    def median_cosine(fidelity):
        return fidelity_summary(fidelity)["gradient_cosine_median"]

    def gate(fidelity):
        row = {"fidelity_measured": True, "steps": 150, "fixed_point_warning": 0, "backward_capped_steps": 0,
               **fidelity_summary(fidelity)}
        return unreliability(row, GATE)

    one_bad_step = measured(0.9999, 0.989, 0.9998, 1.0)  # the default MRI DEQ-ID EI run's pattern
    assert median_cosine(one_bad_step) == pytest.approx(0.99985) and gate(one_bad_step) is None
    assert "median cosine 0.985" in gate(measured(0.98, 0.99, 0.9999, 0.98))
    assert median_cosine(measured(0.5, converged=False) + measured(0.999)) == 0.999  # no reference: left out
    assert "no tight reference" in gate(measured(0.999, converged=False))


def test_a_solve_stopped_at_its_cap_counts_forward_or_backward_in_training_and_at_test():
    from deqbench.leaderboard import unreliability

    converged = {"fidelity_measured": False, "steps": 700, "fixed_point_warning": 7, "backward_capped_steps": 0,
                 "fp_forward_capped": 0.0}
    assert unreliability(converged, GATE) is None  # 1% of the steps: at the limit, not above
    forward_only = {**converged, "fixed_point_warning": 62}  # a Jacobian-free run: no backward solve
    assert "62 of 700 training steps stopped a fixed-point solve at its cap (0 of them" in unreliability(forward_only, GATE)
    at_test = {**converged, "fp_forward_capped": 0.25}
    assert unreliability(at_test, GATE) == "25% of its test solves stopped at their cap (> 1%)"
    untrained = {"fidelity_measured": False, "steps": None, "fixed_point_warning": float("nan")}
    assert unreliability(untrained, GATE) is None


def test_the_markdown_shows_cosines_to_four_decimals_so_an_inexact_step_is_visible():
    from deqbench.leaderboard import markdown

    row = combine_seeds([seed_run(0, 0.0)], seed=0)
    row.update(gradient_cosine_median=0.99994, gradient_cosine_min=0.98895, spectral_radius_max=0.9153)
    line = next(line for line in markdown(pd.DataFrame([row])).splitlines() if line.startswith("| M "))
    cells = [cell.strip() for cell in line.split("|")]
    assert {"0.9999", "0.9889", "0.915"} <= set(cells)  # at 2 decimals both cosines read 0.99
