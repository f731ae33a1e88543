"""Hyperparameters chosen on the validation split.

A method's ``method.yaml`` may list candidate values, ``tuning: {name: [v1, v2, ...]}``.
Every combination :math:`\\theta` of them is scored on the ``n`` validation images by a
criterion that sees ground truth only where the section's loss does
(:data:`CRITERIA`):

- ``sup``: the mean PSNR (the metric of :mod:`deqbench.metrics`) of the reconstructions,

  .. math:: \\theta^\\star = \\arg\\max_\\theta\\; \\frac1n \\sum_{i=1}^n
     \\mathrm{PSNR}\\big(x_i, f_\\theta(y_i)\\big);

- ``ei``: K-fold cross-validation on the measurements alone
  (:func:`deqbench.blocks.data.held_out_folds`): reconstruct from the kept measurements,
  predict the held-out ones,

  .. math:: \\theta^\\star = \\arg\\min_\\theta\\;
     \\frac{\\sum_{i,k} \\|A_{H_k} f_\\theta(y_{i,K_k}; A_{K_k}) - y_{i,H_k}\\|^2}
          {\\sum_{i,k} \\|y_{i,H_k}\\|^2}.

  The held-out noise is independent of the reconstruction, so the criterion is the
  prediction error of the held-out measurements plus a constant (the noise energy). Its
  choice is made for a problem with :math:`1/K` fewer measurements than the test's.

A NaN score (a diverged candidate) ranks last, ties go to the first candidate in grid
order; :math:`\\theta^\\star` then overrides ``hyperparameters`` at evaluation. Selection
is given the validation split alone, never the task, and under ``ei`` the validation
measurements alone, so neither test images nor ground truth can inform it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from deqbench.blocks.data import held_out_folds
from deqbench.losses import needs_ground_truth
from deqbench.measure import timed
from deqbench.methods import MethodError, check_output, method_code
from deqbench.metrics import psnr, scorable

CRITERIA = {True: "validation PSNR (sees ground truth)", False: "held-out measurements (no ground truth)"}
HELD_OUT_FOLDS = 5  # CT: 6 of 30 views held out a fold; MRI: 2-3 of the sampled columns outside the centre


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
    return float(np.mean([psnr(t, e) for t, e in zip(scorable(split["x"]), scorable(estimate))]))


@torch.no_grad()
def held_out_error(model: torch.nn.Module, y: torch.Tensor, physics, device: torch.device,
                   folds: int = HELD_OUT_FOLDS) -> float:
    """The relative prediction error of held-out measurements (module docstring) over the
    measurements ``y``, one batch per fold."""
    y = y.to(device)
    error = energy = 0.0
    for (kept, keep), (held, hold) in held_out_folds(physics, folds):
        estimate = model(keep(y), kept)
        error += (held.A(estimate) - hold(y)).pow(2).sum().item()
        energy += hold(y).pow(2).sum().item()
    return error / energy


def select(build: Callable[[dict], torch.nn.Module], grid: dict[str, list],
           validation: dict[str, torch.Tensor], physics, device: torch.device, loss: str = "sup") -> dict:
    """Choose :math:`\\theta^\\star` from ``grid`` by the criterion of ``loss``; ``build(theta)``
    returns the model to score. Under a loss without ground truth ``validation`` needs only ``y``.

    Returns the tuning record: ``criterion``, ``chosen``, every candidate with its score
    (``val_psnr`` or ``val_held_out_error``),
    ``chosen_on_grid_edge`` (names whose chosen value is an end of a grid of two or more
    values: the grid may be too narrow), ``val_images`` and ``tune_time_s``. A failure of
    the method's own code raises :class:`MethodError`.
    """
    candidates, sees_truth = combinations(grid), needs_ground_truth(loss)
    scores = []
    with timed(device) as clock:
        for theta in candidates:
            model = build(theta).eval()
            with method_code(f"tuning at {theta}"):
                scores.append(mean_psnr(model, validation, physics, device) if sees_truth
                              else held_out_error(model, validation["y"], physics, device))
    ranks = [-math.inf if math.isnan(score) else score if sees_truth else -score for score in scores]
    if max(ranks) == -math.inf:
        raise MethodError(f"tuning: every candidate of {grid} diverges on the validation images")
    chosen = candidates[ranks.index(max(ranks))]
    score_name = "val_psnr" if sees_truth else "val_held_out_error"
    return {
        "criterion": CRITERIA[sees_truth],
        "chosen": chosen,
        "candidates": [{**theta, score_name: score} for theta, score in zip(candidates, scores)],
        "chosen_on_grid_edge": [name for name, value in chosen.items()
                                if len(grid[name]) > 1 and value in (min(grid[name]), max(grid[name]))],
        "val_images": len(validation["y"]),
        "tune_time_s": clock["seconds"],
    }
