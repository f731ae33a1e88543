"""Rows over training seeds: the grand mean, the seed spread, and the worst seed's status;
the protocol's gates, decided from the raw measurements."""

import numpy as np
import pandas as pd
import pytest
import yaml

from deqbench.config import ConfigError
from deqbench.leaderboard import combine_seeds, load_protocol, undertraining

GATES = load_protocol()["gates"]


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
    assert undertraining(row, GATES)["undertrained"] == "yes"  # mean gain 0.2 dB > 0.1


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
    assert undertraining({"val_trend_last_quarter_db": last_quarter_trend(plateau, 800)}, GATES)["undertrained"] == "no"
    assert np.isnan(last_quarter_trend(plateau[-1:], 800)) and np.isnan(last_quarter_trend([], 800))
    every_25 = [{"step": s, "val_psnr": 20.0 + 0.01 * s} for s in (25, 50, 75, 100, 125, 150)]
    assert last_quarter_trend(every_25, 150) == pytest.approx(0.5)  # spans from step 100, not 125


def measurement(step: int, cosine: float, converged: bool = True, exact: bool = True, radius: float = 0.9) -> dict:
    return {"step": step, "gradient_cosine": cosine, "reference_converged": converged, "exact_gradient_claimed": exact,
            "spectral_radius": radius, "gradient_relative_error": 1 - cosine}


def gate(measured: list[dict], gates: dict = GATES) -> str | None:
    """The verdict of the gates on a run with these fidelity measurements and nothing else wrong."""
    from deqbench.leaderboard import fidelity_statistics, unreliability

    row = {"steps": 150, "fixed_point_warning": 0, "backward_capped_steps": 0, **fidelity_statistics(measured, gates)}
    return unreliability(row, gates)


def test_one_trained_step_under_the_cosine_floor_makes_the_run_unreliable():
    one_bad_step = [measurement(0, 0.9999), measurement(50, 0.989), measurement(100, 0.9998), measurement(149, 1.0)]
    assert "implicit gradient cosine 0.9890 against a tight solve (min over trained steps; < 0.99)" in gate(one_bad_step)
    jacobian_free = [measurement(0, 0.9), measurement(50, 0.5, exact=False)]  # claims no exact gradient
    assert gate(jacobian_free) is None


def test_a_bad_step_0_is_shown_and_never_gated():
    from deqbench.leaderboard import fidelity_statistics

    untrained_map = [measurement(0, 0.5, converged=False, radius=1.5), measurement(0, 0.6), measurement(50, 0.9999)]
    assert gate(untrained_map) is None
    shown = fidelity_statistics(untrained_map, GATES)
    assert shown["gradient_cosine_initial"] == 0.6 and shown["gradient_cosine_min"] == 0.9999
    assert shown["fidelity_unconverged_references"] == 0 and shown["spectral_radius_max"] == 0.9


def test_an_unconverged_reference_is_a_failed_measurement_counted_on_the_row():
    from deqbench.leaderboard import fidelity_statistics

    measured = [measurement(0, 0.9999), measurement(50, -0.98, converged=False, radius=1.2), measurement(99, 0.999)]
    shown = fidelity_statistics(measured, GATES)
    assert shown["fidelity_unconverged_references"] == 1
    assert shown["gradient_cosine_min"] == 0.999 and shown["spectral_radius_max"] == 0.9  # its numbers mean nothing
    assert gate(measured) == "1 trained fidelity measurement(s) failed, their tight reference unconverged (> 0)"


def test_a_changed_gate_re_decides_a_run_from_its_recorded_measurements():
    from deqbench.leaderboard import run_row, unreliability

    run = {"task": "ct", "loss": "sup", "method": "deq-id", "status": "ok",
           "train": {"steps": 150, "fidelity": [measurement(0, 0.5), measurement(50, 0.995), measurement(149, 0.999)]}}
    images = pd.DataFrame({"split": "test", "image": [0], "psnr": [25.0], "ssim": [0.5], "seconds": [0.1]})
    median = {**GATES, "gradient_cosine": {**GATES["gradient_cosine"], "min": 0.996, "statistic": "median"}}
    assert unreliability(run_row(run, images, {}, median), median) is None  # median of 0.995, 0.999: 0.997
    strict = {**median, "gradient_cosine": {**median["gradient_cosine"], "statistic": "min"}}
    assert "cosine 0.9950" in unreliability(run_row(run, images, {}, strict), strict)


def test_a_solve_not_at_its_fixed_point_counts_forward_or_backward_in_training_and_at_test():
    from deqbench.leaderboard import capped_test_share, unreliability

    converged = {"steps": 700, "fixed_point_warning": 7, "backward_capped_steps": 0, "test_capped_share": 0.0}
    assert unreliability(converged, GATES) is None  # 1% of the steps: at the limit, not above
    forward_only = {**converged, "fixed_point_warning": 62}  # a Jacobian-free run: no backward solve
    assert "62 of 700 training steps stopped a fixed-point solve at its cap (0 of them" in unreliability(forward_only, GATES)
    test = pd.DataFrame({"fp_forward_capped": [1.0, 0.0, 0.0, 0.0], "fp_forward_residual_max": 1e-6})
    at_test = {**converged, "test_capped_share": capped_test_share(test, False, GATES)}
    assert unreliability(at_test, GATES).startswith("25% of its test solves not at their fixed point")
    untrained = {"steps": None, "fixed_point_warning": float("nan")}
    assert unreliability(untrained, GATES) is None


def test_a_fixed_budget_solve_ending_above_the_residual_tolerance_is_unreliable():
    """ODER's forward solve runs 30 iterations (tol 0) and reports no cap; its residual floor
    (the draws' variance) is about 5e-3 on the default CT task."""
    from deqbench.leaderboard import capped_test_share, fixed_budget, run_row, unreliability

    budgeted = {"hyperparameters": {"forward": {"tol": 0, "max_iter": 30}}}
    assert fixed_budget(budgeted, GATES) and not fixed_budget({"hyperparameters": {"forward": {"tol": 1e-5}}}, GATES)
    run = {"task": "ct", "loss": "sup", "method": "oder", "status": "ok", "train": {"steps": 150}}
    images = pd.DataFrame({"split": "test", "image": range(4), "psnr": 25.0, "ssim": 0.5, "seconds": 0.1,
                           "fp_forward_capped": 0.0, "fp_forward_residual_max": [5e-3, 4e-3, 6e-3, 5e-5]})
    row = run_row(run, images, budgeted, GATES)
    assert row["test_capped_share"] == 0.75
    assert "75% of its test solves not at their fixed point" in unreliability(row, GATES)
    assert run_row(run, images, {"hyperparameters": {"forward": {"tol": 1e-5}}}, GATES)["test_capped_share"] == 0
    unrecorded = images.drop(columns="fp_forward_residual_max")  # not shown to be at its fixed point
    assert capped_test_share(unrecorded[unrecorded["split"] == "test"], True, GATES) == 1.0


def test_sizes_and_the_time_per_draw_come_from_the_evaluation_and_stay_blank_for_old_runs():
    from deqbench.leaderboard import run_row

    run = {"task": "ct", "loss": "sup", "method": "oder", "status": "ok",
           "evaluation": {"parameters": 1234, "flops_per_image": 2.5e9}}
    images = pd.DataFrame({"split": "test", "image": range(3), "psnr": 25.0, "ssim": 0.5, "seconds": 0.1,
                           "seconds_per_draw": [0.01, 0.03, 0.02]})
    row = run_row(run, images, {}, GATES)
    assert row["parameters"] == 1234 and row["flops_per_image"] == 2.5e9
    assert row["test_ms_per_draw"] == pytest.approx(20.0)
    old = run_row({**run, "evaluation": {}}, images.drop(columns="seconds_per_draw"), {}, GATES)
    assert np.isnan(old["parameters"]) and np.isnan(old["flops_per_image"]) and np.isnan(old["test_ms_per_draw"])


def test_the_shipped_protocol_validates_and_a_wrong_key_names_file_and_key(tmp_path):
    protocol = load_protocol()
    assert protocol["version"] == protocol["changelog"][-1]["version"]
    assert protocol["gates"]["gradient_cosine"] == {"statistic": "min", "min": 0.99, "applies_when": "exact_gradient_claimed"}
    wrong = tmp_path / "protocol.yaml"
    gates = {**protocol["gates"], "min_median_gradient_cosine": 0.99}
    wrong.write_text(yaml.safe_dump({**protocol, "gates": gates}))
    with pytest.raises(ConfigError, match=f"{wrong}: key 'gates'.*min_median_gradient_cosine"):
        load_protocol(wrong)
    wrong.write_text(yaml.safe_dump({**protocol, "version": protocol["version"] + 1}))  # no changelog entry
    with pytest.raises(ConfigError, match=f"{wrong}: key 'changelog'"):
        load_protocol(wrong)


def test_the_markdown_shows_cosines_to_four_decimals_so_an_inexact_step_is_visible():
    from deqbench.leaderboard import markdown

    row = combine_seeds([seed_run(0, 0.0)], seed=0)
    row.update(gradient_cosine_median=0.99994, gradient_cosine_min=0.98895, spectral_radius_max=0.9153,
               parameters=12345, flops_per_image=2.5e9, protocol_version=2)
    text = markdown(pd.DataFrame([row]))
    line = next(line for line in text.splitlines() if line.startswith("| M "))
    cells = [cell.strip() for cell in line.split("|")]
    assert {"0.9999", "0.9889", "0.915"} <= set(cells)  # at 2 decimals both cosines read 0.99
    assert {"12345", "2.50"} <= set(cells) and "GFLOPs/img" in text
    assert "## ct, loss `sup`, protocol version 2" in text


def test_rank_is_one_plus_the_rows_whose_paired_interval_lies_above():
    from deqbench.leaderboard import markdown, with_ranks

    rng = np.random.default_rng(0)
    base = rng.normal(25, 2, size=16)
    offsets = {("a", "sup"): 2.0, ("b", "sup"): 0.0, ("c", "sup"): 0.01, ("fbp", "none"): -3.0}
    images = pd.concat([pd.DataFrame({"task": "ct", "method": m, "loss": l, "seed": s, "split": "test",
                                      "image": range(16), "psnr": base + offset + rng.normal(0, 0.5, 16)})
                        for (m, l), offset in offsets.items() for s in (0, 1)])
    table = pd.DataFrame([{"task": "ct", "method": m, "loss": l, "name": m, "family": "x", "status": "ok",
                           "reason": "", "psnr": 25 + offset} for (m, l), offset in offsets.items()])
    ranked = with_ranks(table, images, seed=0).set_index("method")["rank"]
    assert ranked["a"] == 1 and ranked["b"] == ranked["c"] == 2  # b and c tie: no interval separates them
    assert np.isnan(ranked["fbp"])  # a reference row is ranked per section, in the Markdown
    sup = markdown(table.assign(psnr_ci95=0.1, ssim=0.5, ssim_ci95=0.01, ood_psnr=np.nan, ood_psnr_ci95=np.nan,
                                protocol_version=2), images).split("## ct, loss `ei`")[0]
    header = next(line for line in sup.splitlines() if "PSNR (dB)" in line)
    assert header.split("|")[1].strip() == "rank"
    fbp_line = next(line for line in sup.splitlines() if "| fbp" in line)
    assert fbp_line.split("|")[1].strip() == "4"  # below a, and below b and c, which tie at 2
