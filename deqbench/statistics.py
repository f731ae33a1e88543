"""Paired comparisons between leaderboard rows, and the quality-cost Pareto front.

Two rows of one task are compared on the test images they share. The per-image PSNR
differences :math:`d_i = \\mathrm{PSNR}_A(i) - \\mathrm{PSNR}_B(i)` are resampled with
replacement (a seeded generator, the same resamples for every pair) and the mean of each
resample gives a percentile bootstrap interval of the mean difference. "A beats B" is
claimed only when that interval lies entirely above zero. Each pair is a separate
claim at the stated level (no correction for the number of pairs), and with few test
images the percentile interval is optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
import pandas as pd

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over the shared images and its bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def paired_bootstrap(a, b, seed: int, resamples: int = RESAMPLES, level: float = LEVEL) -> PairedDifference:
    """Percentile bootstrap interval of ``mean(a - b)`` for paired samples.

    Fewer than two pairs give a NaN interval (no claim can be made from one image).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} and {b.shape}")
    differences = a - b
    n = len(differences)
    if n < 2:
        mean = float(differences.mean()) if n else float("nan")
        return PairedDifference(mean, float("nan"), float("nan"), n)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = differences[draws].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return PairedDifference(float(differences.mean()), float(low), float(high), n)


def compare_entries(scores: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every ordered pair of entries compared on their shared images.

    ``scores`` has columns ``entry``, ``image`` and ``psnr`` (one row per entry and test
    image). Returns one row per ordered pair: ``entry_a``, ``entry_b``, ``mean`` (of
    a - b), ``low``, ``high``, ``n`` and ``a_beats_b``.
    """
    wide = scores.pivot(index="image", columns="entry", values="psnr")
    rows = []
    for first, second in permutations(wide.columns, 2):
        shared = wide[[first, second]].dropna()
        diff = paired_bootstrap(shared[first], shared[second], seed)
        rows.append({"entry_a": first, "entry_b": second, "mean": diff.mean, "low": diff.low,
                     "high": diff.high, "n": diff.n, "a_beats_b": diff.low > 0})
    return pd.DataFrame(rows, columns=["entry_a", "entry_b", "mean", "low", "high", "n", "a_beats_b"])


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
