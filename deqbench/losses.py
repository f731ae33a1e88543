"""Training losses, all from deepinv.

- ``sup``: :math:`\\|\\hat x - x\\|^2`, supervised (deepinv ``SupLoss``);
- ``ei``: equivariant imaging, no ground truth (Chen, Tachella, Davies 2021):
  :math:`\\|A \\hat x - y\\|^2 + \\alpha \\|T_g \\hat x - f(A T_g \\hat x)\\|^2` with
  :math:`\\hat x = f(y)` and :math:`T_g` a random rotation (deepinv ``MCLoss`` +
  ``EILoss`` with ``transform.Rotate``). The re-measurement :math:`A T_g \\hat x` is
  noised with the task's noise model.
"""

from __future__ import annotations

import torch
from deepinv.loss import EILoss, MCLoss, SupLoss
from deepinv.transform import Rotate

LOSSES = ("sup", "ei")


def needs_ground_truth(name: str) -> bool:
    return name == "sup"


def build_loss(name: str, settings: dict, generator: torch.Generator) -> list:
    """The deepinv loss terms for ``name``; ``generator`` seeds the random transforms."""
    if name == "sup":
        return [SupLoss()]
    if name == "ei":
        rotate = Rotate(rng=generator, multiples=settings["ei_rotation_multiples"],
                        interpolation_mode="bilinear")
        return [MCLoss(), EILoss(transform=rotate, weight=settings["ei_weight"])]
    raise ValueError(f"unknown loss '{name}' (known: {', '.join(LOSSES)})")


def total_loss(terms: list, x_net, x, y, physics, model) -> torch.Tensor:
    """Sum of the batch-mean of every term."""
    return sum(term(x_net=x_net, x=x, y=y, physics=physics, model=model).mean() for term in terms)
