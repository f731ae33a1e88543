"""Hyperparameters chosen on the validation split.

A method's ``method.yaml`` may list candidate values, ``tuning: {name: [v1, v2, ...]}``.
Every combination :math:`\\theta` of them is scored by the mean PSNR (the metric of
:mod:`deqbench.metrics`) of the model built with it on the ``n`` validation images,

.. math:: \\theta^\\star = \\arg\\max_\\theta\\; \\frac1n \\sum_{i=1}^n
   \\mathrm{PSNR}\\big(x_i, f_\\theta(y_i)\\big),

a NaN score (a diverged candidate) counting as :math:`-\\infty` and ties going to the
first candidate in grid order; :math:`\\theta^\\star` then overrides ``hyperparameters``
at evaluation. Selection is given the validation split alone, never the task, so the
test images cannot inform it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from deqbench.measure import timed
from deqbench.methods import MethodError, check_output, method_code
from deqbench.metrics import psnr
from deqbench.tasks import magnitude


def combinations(grid: dict[str, list]) -> list[dict]:
    """Every combination of the candidate values, in grid order (last name fastest)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


@torch.no_grad()
def mean_psnr(model: torch.nn.Module, split: dict[str, torch.Tensor], physics,
              device: torch.device, batch_size: int | None = None) -> float:
    """Mean PSNR of ``model`` over the images of ``split`` (``x``, ``y``), run in batches
    of ``batch_size`` (default: one batch)."""
    ys = split["y"].to(device).split(batch_size or len(split["y"]))
    estimate = torch.cat([model(y, physics) for y in ys])
    check_output(estimate, split["x"].shape)
    truths = magnitude(split["x"]).numpy().astype(np.float64)
    estimates = magnitude(estimate.float().cpu()).numpy().astype(np.float64)
    return float(np.mean([psnr(t, e) for t, e in zip(truths, estimates)]))


def select(build: Callable[[dict], torch.nn.Module], grid: dict[str, list],
           validation: dict[str, torch.Tensor], physics, device: torch.device) -> dict:
    """Choose :math:`\\theta^\\star` from ``grid``; ``build(theta)`` returns the model to score.

    Returns the tuning record: ``chosen``, every candidate with its ``val_psnr``,
    ``chosen_on_grid_edge`` (names whose chosen value is an end of a grid of two or more
    values: the grid may be too narrow), ``val_images`` and ``tune_time_s``. A failure of
    the method's own code raises :class:`MethodError`.
    """
    candidates = combinations(grid)
    scores = []
    with timed(device) as clock:
        for theta in candidates:
            model = build(theta).eval()
            with method_code(f"tuning at {theta}"):
                scores.append(mean_psnr(model, validation, physics, device))
    ranks = [-math.inf if math.isnan(score) else score for score in scores]
    if max(ranks) == -math.inf:
        raise MethodError(f"tuning: every candidate of {grid} diverges on the validation images")
    chosen = candidates[ranks.index(max(ranks))]
    return {
        "criterion": "validation PSNR (sees ground truth)",
        "chosen": chosen,
        "candidates": [{**theta, "val_psnr": score} for theta, score in zip(candidates, scores)],
        "chosen_on_grid_edge": [name for name, value in chosen.items()
                                if len(grid[name]) > 1 and value in (min(grid[name]), max(grid[name]))],
        "val_images": len(validation["y"]),
        "tune_time_s": clock["seconds"],
    }
