r"""Equivariance of a trained reconstruction map to rotations.

For a test image :math:`x` and a rotation :math:`T_g`, the relative error

.. math::  e_g(x) = \frac{\|f(A T_g x) - T_g f(A x)\|}{\|T_g f(A x)\|}

is zero for a map that commutes with rotations, as the proximal map of a
rotation-invariant prior does (the finding of the Equivariant-DEQ paper). It is
measured on the first test images, from noiseless measurements, so that it is the error
of the map rather than of the noise. The rotations are drawn once by deepinv's
``Rotate`` from a generator seeded with the run seed, so every method sees the same
angles. Rotating a square image crops its
corners, so both norms are taken over the inscribed disc, which rotations map onto
itself; the bilinear interpolation of angles that are not right angles still keeps even
an exactly equivariant map above zero, and the reference rows (FBP / zero-filled, TV)
show that floor.
"""

from __future__ import annotations

import torch
from deepinv.transform import Rotate

from deqbench.tasks import Task

ROTATIONS = 3
IMAGES = 8


def inscribed_disc(size: int) -> torch.Tensor:
    """``(size, size)`` mask of the pixels whose centre lies in the inscribed disc."""
    centres = torch.arange(size) - (size - 1) / 2
    return (centres[:, None] ** 2 + centres[None, :] ** 2 <= (size / 2) ** 2).float()


def rotation_angles(seed: int) -> torch.Tensor:
    """``ROTATIONS`` distinct non-zero integer angles in degrees, the same for a given seed."""
    rotate = Rotate(n_trans=ROTATIONS + 1, multiples=1.0, positive=True, interpolation_mode="bilinear",
                    rng=torch.Generator().manual_seed(seed))
    theta = rotate.get_params(torch.zeros(1, 1, 1, 1))["theta"]
    return theta[theta != 0][:ROTATIONS]


@torch.no_grad()
def equivariance_errors(model: torch.nn.Module, task: Task, device: torch.device, seed: int) -> list[float]:
    """Mean over the seeded rotations of :math:`e_g(x)`, one value for each of the first
    ``IMAGES`` test images (each costs one reconstruction, plus one per rotation)."""
    rotate = Rotate(interpolation_mode="bilinear")
    theta = rotation_angles(seed)
    physics, truths = task.physics, task.splits["test"]["x"][:IMAGES]
    disc = inscribed_disc(truths.shape[-1]).to(device)
    errors = []
    for index in range(len(truths)):
        x = truths[index:index + 1].to(device)
        rotated_output = rotate.transform(model(physics.A(x), physics), theta=theta) * disc
        output_of_rotated = model(physics.A(rotate.transform(x, theta=theta)), physics) * disc
        difference = (output_of_rotated - rotated_output).flatten(1).norm(dim=1)
        errors.append((difference / rotated_output.flatten(1).norm(dim=1).clamp_min(1e-12)).mean().item())
    return errors
