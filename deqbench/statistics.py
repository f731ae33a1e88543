"""Intervals over training seeds and test images, paired comparisons between
leaderboard rows, and the quality-cost Pareto front.

A row's score is a table :math:`q_{si}` of per-image scores, one row per training seed
:math:`s` (one row for a method that trains nothing), one column per test image
:math:`i`, and its estimate the grand mean :math:`\bar q`. Its interval comes from a
two-level bootstrap (Bouthillier et al. 2021, *Accounting for variance in machine
learning benchmarks*): every resample draws the seeds with replacement, then the images
with replacement, and takes the mean of the drawn sub-table; the 2.5% and 97.5%
percentiles of those means bound the 95% interval. It so counts both sources of noise a
rerun on new data with new seeds would meet, instead of the test images alone.

Two rows of one task are compared on the test images they share: each resample draws
each row's seeds independently (their training runs are independent) and one set of
images for both (the images are shared, which pairs them), and takes the difference of
the two means. "A beats B" is claimed only when the interval of that difference lies
entirely above zero. Each pair is a separate claim at the stated level (no correction
for the number of pairs); with few seeds or images the percentile interval is optimistic.
The generator is seeded, so the same tables give the same intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
import pandas as pd

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate, its bootstrap interval, and the seeds and images it rests on."""

    mean: float
    low: float
    high: float
    n: int  # images
    seeds: int = 1

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def seed_table(scores) -> np.ndarray:
    """``scores`` as a (seeds, images) array; a 1-D array is one seed."""
    table = np.asarray(scores, dtype=float)
    return table[None, :] if table.ndim == 1 else table


def resampled_means(a, b=None, seed: int = 0, resamples: int = RESAMPLES) -> np.ndarray:
    """``resamples`` two-level bootstrap draws of ``mean(a)`` (or ``mean(a) - mean(b)``):
    images drawn once per resample and shared by ``a`` and ``b``, seeds drawn for each
    table on its own."""
    tables = [seed_table(a)] + ([seed_table(b)] if b is not None else [])
    images = tables[0].shape[1]
    if any(t.shape[1] != images for t in tables):
        raise ValueError(f"paired tables differ in their number of images: {[t.shape[1] for t in tables]}")
    rng = np.random.default_rng(seed)
    image_draws = rng.integers(0, images, size=(resamples, images))
    means = []
    for table in tables:
        seed_draws = rng.integers(0, len(table), size=(resamples, len(table)))
        means.append(table[seed_draws[:, :, None], image_draws[:, None, :]].mean(axis=(1, 2)))
    return means[0] - means[1] if b is not None else means[0]


def bootstrap_interval(a, b=None, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL) -> Interval:
    """Mean of ``a`` (seeds x images, or one seed's images), or of ``a - b`` paired on
    the images, with its two-level percentile interval (module docstring). Fewer than
    two images give a NaN interval."""
    tables = [seed_table(a)] + ([seed_table(b)] if b is not None else [])
    images, seeds = tables[0].shape[1], min(len(t) for t in tables)
    mean = tables[0].mean() - (tables[1].mean() if b is not None else 0.0) if images else float("nan")
    if images < 2:
        return Interval(float(mean), float("nan"), float("nan"), images, seeds)
    low, high = np.quantile(resampled_means(a, b, seed, resamples), [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(mean), float(low), float(high), images, seeds)


def score_tables(scores: pd.DataFrame, column: str = "psnr") -> dict[str, pd.DataFrame]:
    """Per entry, its (seeds x images) table of ``column`` from ``scores`` (columns
    ``entry``, ``seed``, ``image`` and ``column``, one row per entry, training seed and
    test image); images a seed has no score for are dropped (equivariance, for one, is
    measured on the first test images only)."""
    return {entry: group.pivot(index="seed", columns="image", values=column).dropna(axis=1)
            for entry, group in scores.groupby("entry")}


def paired_interval(first: pd.DataFrame, second: pd.DataFrame, seed: int = 0) -> Interval:
    """``first - second`` (two :func:`score_tables` tables) on the images both have."""
    shared = first.columns.intersection(second.columns)
    return bootstrap_interval(first[shared].to_numpy(), second[shared].to_numpy(), seed)


def compare_entries(scores: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every ordered pair of entries of ``scores`` (as :func:`score_tables` reads it)
    compared on their PSNR on shared images. Returns one row per ordered pair:
    ``entry_a``, ``entry_b``, ``mean`` (of a - b), ``low``, ``high``, ``n`` (images),
    ``seeds`` (the fewer of the two) and ``a_beats_b``.
    """
    tables = score_tables(scores)
    rows = []
    for first, second in permutations(sorted(tables), 2):
        diff = paired_interval(tables[first], tables[second], seed)
        rows.append({"entry_a": first, "entry_b": second, "mean": diff.mean, "low": diff.low,
                     "high": diff.high, "n": diff.n, "seeds": diff.seeds, "a_beats_b": diff.low > 0})
    return pd.DataFrame(rows, columns=["entry_a", "entry_b", "mean", "low", "high", "n", "seeds", "a_beats_b"])


def ranks(comparisons: pd.DataFrame, entries: list[str]) -> dict[str, int]:
    """Rank of each entry: one plus the number of entries that beat it.

    Entries that no comparison separates share a rank (a tie).
    """
    beaten_by = comparisons.loc[comparisons["a_beats_b"].astype(bool), "entry_b"].value_counts()
    return {entry: 1 + int(beaten_by.get(entry, 0)) for entry in entries}


def pareto_front(cost, quality) -> np.ndarray:
    """Mask of the points no other point dominates (cost no higher and quality no lower,
    one of them strictly); points with a missing value are never on the front."""
    cost, quality = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    valid = np.isfinite(cost) & np.isfinite(quality)
    front = np.zeros(len(cost), dtype=bool)
    for i in np.flatnonzero(valid):
        no_worse = valid & (cost <= cost[i]) & (quality >= quality[i])
        better = (cost < cost[i]) | (quality > quality[i])
        front[i] = not np.any(no_worse & better)
    return front
