"""Two-level bootstrap intervals and paired comparisons, ranks with ties and the Pareto front,
on data with a known answer or against a brute-force enumeration."""

from itertools import product

import numpy as np
import pandas as pd
import pytest

from deqbench.statistics import bootstrap_interval, compare_entries, pareto_front, ranks, resampled_means


def test_a_constant_one_db_difference_gives_an_interval_at_one_excluding_zero():
    b = np.random.default_rng(0).normal(30, 3, size=20)
    diff = bootstrap_interval(b + 1.0, b, seed=0)
    assert diff.mean == pytest.approx(1.0)
    assert diff.low == pytest.approx(1.0) and diff.high == pytest.approx(1.0)
    assert diff.excludes_zero and diff.n == 20


def test_identical_rows_give_an_interval_containing_zero():
    a = np.random.default_rng(1).normal(25, 2, size=16)
    diff = bootstrap_interval(a, a.copy(), seed=0)
    assert diff.low <= 0 <= diff.high
    assert not diff.excludes_zero


def test_noisy_zero_mean_differences_are_not_called_a_win():
    rng = np.random.default_rng(2)
    base = rng.normal(28, 2, size=64)
    noise = rng.normal(0, 0.5, size=64)
    diff = bootstrap_interval(base + noise - noise.mean(), base, seed=0)
    assert diff.low < 0 < diff.high and not diff.excludes_zero


def test_interval_width_matches_normal_theory_for_many_images():
    differences = np.random.default_rng(3).normal(0.5, 1.0, size=400)
    diff = bootstrap_interval(differences, np.zeros(400), seed=0)
    half = 1.96 * differences.std(ddof=1) / np.sqrt(400)
    assert (diff.high - diff.low) / 2 == pytest.approx(half, rel=0.1)
    assert diff.low < differences.mean() < diff.high


def test_same_seed_same_interval_and_the_pairing_matters():
    rng = np.random.default_rng(4)
    base = rng.normal(30, 5, size=12)
    improved = base + 0.3 + rng.normal(0, 0.05, size=12)
    assert bootstrap_interval(improved, base, seed=7) == bootstrap_interval(improved, base, seed=7)
    assert bootstrap_interval(improved, base, seed=7).excludes_zero
    # unpaired, the same 0.3 dB would drown in the 5 dB spread between images
    assert not bootstrap_interval(improved, np.roll(base, 1), seed=7).excludes_zero


def test_one_image_makes_no_claim_and_unequal_lengths_are_refused():
    single = bootstrap_interval([31.0], [30.0], seed=0)
    assert single.mean == 1.0 and np.isnan(single.low) and not single.excludes_zero
    with pytest.raises(ValueError, match="differ in their number of images"):
        bootstrap_interval([1.0, 2.0], [1.0], seed=0)


def test_ranks_tie_entries_the_data_cannot_separate():
    rng = np.random.default_rng(5)
    base = rng.normal(25, 2, size=10)
    psnr = {"strong": base + 2.0, "also-strong": base + 2.0 + rng.normal(0, 0.3, size=10), "weak": base}
    scores = pd.DataFrame([{"entry": e, "seed": 0, "image": i, "psnr": v} for e, values in psnr.items()
                           for i, v in enumerate(values)])
    comparisons = compare_entries(scores, seed=0)
    assert len(comparisons) == 6
    beats = comparisons.set_index(["entry_a", "entry_b"])["a_beats_b"]
    assert beats[("strong", "weak")] and beats[("also-strong", "weak")]
    assert not beats[("strong", "also-strong")] and not beats[("also-strong", "strong")]
    assert ranks(comparisons, list(psnr)) == {"strong": 1, "also-strong": 1, "weak": 3}


def test_comparisons_use_only_the_images_both_entries_have():
    scores = pd.DataFrame({"entry": ["a"] * 3 + ["b"] * 2, "seed": 0, "image": [0, 1, 2, 0, 1],
                           "psnr": [31.0, 32.0, 99.0, 30.0, 31.0]})
    row = compare_entries(scores, seed=0).set_index(["entry_a", "entry_b"]).loc[("a", "b")]
    assert row["n"] == 2 and row["mean"] == pytest.approx(1.0)


def brute_force_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every equally likely outcome of the two-level resampling, enumerated: seeds of
    ``a``, seeds of ``b`` (independently), then one set of images for both."""
    outcomes = []
    for seeds_a in product(range(len(a)), repeat=len(a)):
        for seeds_b in product(range(len(b)), repeat=len(b)):
            for images in product(range(a.shape[1]), repeat=a.shape[1]):
                chosen = list(images)
                outcomes.append(a[list(seeds_a)][:, chosen].mean() - b[list(seeds_b)][:, chosen].mean())
    return np.array(outcomes)


def test_two_level_bootstrap_matches_a_brute_force_enumeration():
    rng = np.random.default_rng(6)
    images = rng.normal(28, 3, size=4)  # shared image difficulty
    a = images + 0.4 + rng.normal(0, 0.6, size=(3, 1)) + rng.normal(0, 0.2, size=(3, 4))  # 3 seeds
    b = images + rng.normal(0, 0.6, size=(2, 1)) + rng.normal(0, 0.2, size=(2, 4))  # 2 seeds
    exact = brute_force_differences(a, b)  # 27 x 4 x 256 outcomes
    sampled = resampled_means(a, b, seed=0, resamples=40_000)
    assert sampled.mean() == pytest.approx(exact.mean(), abs=0.01)
    assert sampled.std() == pytest.approx(exact.std(), rel=0.03)
    interval = bootstrap_interval(a, b, seed=0, resamples=40_000)
    for estimate, level in ((interval.low, 0.025), (interval.high, 0.975)):
        assert np.quantile(exact, level - 0.01) <= estimate <= np.quantile(exact, level + 0.01)
    assert interval.mean == pytest.approx(a.mean() - b.mean()) and interval.seeds == 2 and interval.n == 4


def test_seed_noise_widens_the_interval_that_images_alone_would_give():
    rng = np.random.default_rng(7)
    per_image = rng.normal(0, 0.1, size=16)
    seed_offsets = np.array([[-1.0], [0.0], [1.0]])
    table = 30 + per_image + seed_offsets  # seeds disagree by 1 dB, images barely vary
    two_level = bootstrap_interval(table, seed=0)
    images_only = bootstrap_interval(table.mean(axis=0), seed=0)
    assert two_level.mean == pytest.approx(images_only.mean)
    assert (two_level.high - two_level.low) > 10 * (images_only.high - images_only.low)


def test_a_one_db_gain_within_seed_noise_is_not_called_a_win():
    rng = np.random.default_rng(8)
    base = rng.normal(28, 2, size=12)
    a = base + 1.0 + np.array([[-2.5], [0.0], [2.5]])  # +1 dB on average, seeds spread 2.5 dB
    b = base + np.array([[-2.5], [0.0], [2.5]])
    scores = pd.DataFrame([{"entry": entry, "seed": s, "image": i, "psnr": table[s, i]}
                           for entry, table in (("a", a), ("b", b)) for s in range(3) for i in range(12)])
    row = compare_entries(scores, seed=0).set_index(["entry_a", "entry_b"]).loc[("a", "b")]
    assert row["mean"] == pytest.approx(1.0) and row["seeds"] == 3
    assert not row["a_beats_b"]
    assert bootstrap_interval(a.mean(axis=0), b.mean(axis=0), seed=0).excludes_zero  # seed means alone would


def test_pareto_front_keeps_the_points_nothing_dominates():
    cost = [1.0, 2.0, 3.0, 2.0, np.nan, 5.0]
    quality = [20.0, 25.0, 24.0, 22.0, 40.0, 30.0]
    assert pareto_front(cost, quality).tolist() == [True, True, False, False, False, True]
