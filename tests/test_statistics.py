"""Paired bootstrap comparisons, ranks with ties and the Pareto front, on data with a known answer."""

import numpy as np
import pandas as pd
import pytest

from deqbench.statistics import compare_entries, paired_bootstrap, pareto_front, ranks


def test_a_constant_one_db_difference_gives_an_interval_at_one_excluding_zero():
    b = np.random.default_rng(0).normal(30, 3, size=20)
    diff = paired_bootstrap(b + 1.0, b, seed=0)
    assert diff.mean == pytest.approx(1.0)
    assert diff.low == pytest.approx(1.0) and diff.high == pytest.approx(1.0)
    assert diff.excludes_zero and diff.n == 20


def test_identical_rows_give_an_interval_containing_zero():
    a = np.random.default_rng(1).normal(25, 2, size=16)
    diff = paired_bootstrap(a, a.copy(), seed=0)
    assert diff.low <= 0 <= diff.high
    assert not diff.excludes_zero


def test_noisy_zero_mean_differences_are_not_called_a_win():
    rng = np.random.default_rng(2)
    base = rng.normal(28, 2, size=64)
    noise = rng.normal(0, 0.5, size=64)
    diff = paired_bootstrap(base + noise - noise.mean(), base, seed=0)
    assert diff.low < 0 < diff.high and not diff.excludes_zero


def test_interval_width_matches_normal_theory_for_many_images():
    differences = np.random.default_rng(3).normal(0.5, 1.0, size=400)
    diff = paired_bootstrap(differences, np.zeros(400), seed=0)
    half = 1.96 * differences.std(ddof=1) / np.sqrt(400)
    assert (diff.high - diff.low) / 2 == pytest.approx(half, rel=0.1)
    assert diff.low < differences.mean() < diff.high


def test_same_seed_same_interval_and_the_pairing_matters():
    rng = np.random.default_rng(4)
    base = rng.normal(30, 5, size=12)
    improved = base + 0.3 + rng.normal(0, 0.05, size=12)
    assert paired_bootstrap(improved, base, seed=7) == paired_bootstrap(improved, base, seed=7)
    assert paired_bootstrap(improved, base, seed=7).excludes_zero
    # unpaired, the same 0.3 dB would drown in the 5 dB spread between images
    assert not paired_bootstrap(improved, np.roll(base, 1), seed=7).excludes_zero


def test_one_image_makes_no_claim_and_unequal_lengths_are_refused():
    single = paired_bootstrap([31.0], [30.0], seed=0)
    assert single.mean == 1.0 and np.isnan(single.low) and not single.excludes_zero
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0, 2.0], [1.0], seed=0)


def test_ranks_tie_entries_the_data_cannot_separate():
    rng = np.random.default_rng(5)
    base = rng.normal(25, 2, size=10)
    psnr = {"strong": base + 2.0, "also-strong": base + 2.0 + rng.normal(0, 0.3, size=10), "weak": base}
    scores = pd.DataFrame([{"entry": e, "image": i, "psnr": v} for e, values in psnr.items()
                           for i, v in enumerate(values)])
    comparisons = compare_entries(scores, seed=0)
    assert len(comparisons) == 6
    beats = comparisons.set_index(["entry_a", "entry_b"])["a_beats_b"]
    assert beats[("strong", "weak")] and beats[("also-strong", "weak")]
    assert not beats[("strong", "also-strong")] and not beats[("also-strong", "strong")]
    assert ranks(comparisons, list(psnr)) == {"strong": 1, "also-strong": 1, "weak": 3}


def test_comparisons_use_only_the_images_both_entries_have():
    scores = pd.DataFrame({"entry": ["a"] * 3 + ["b"] * 2, "image": [0, 1, 2, 0, 1],
                           "psnr": [31.0, 32.0, 99.0, 30.0, 31.0]})
    row = compare_entries(scores, seed=0).set_index(["entry_a", "entry_b"]).loc[("a", "b")]
    assert row["n"] == 2 and row["mean"] == pytest.approx(1.0)


def test_pareto_front_keeps_the_points_nothing_dominates():
    cost = [1.0, 2.0, 3.0, 2.0, np.nan, 5.0]
    quality = [20.0, 25.0, 24.0, 22.0, 40.0, 30.0]
    assert pareto_front(cost, quality).tolist() == [True, True, False, False, False, True]
