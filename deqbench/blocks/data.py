r"""Data-consistency gradients :math:`\nabla f(x) = A^H(Ax - y)` of
:math:`f(x) = \tfrac12\|Ax - y\|^2`, in full or over groups of the measurements.

:class:`MeasurementGroups` splits the measurements into groups that each span the whole
acquisition, for estimators that use a subset of them per iteration (ODER). The
measurement units (CT view angles; multi-coil MRI: the coils; single-coil MRI: the
sampled k-space columns outside the fully sampled centre) are split in acquisition order
into ``blocks`` contiguous blocks, and the units at the same offset in every block form a
group, so each group spans the whole angular range (the coils all around the image, or
k-space). With :math:`G` groups, :math:`C` the units kept in every draw (the single-coil
MRI centre columns, which carry most of the energy; none for CT and multi-coil MRI),

.. math::  A_C^H(A_C x - y_C) + \sum_{g=1}^{G} A_g^H(A_g x - y_g) = A^H(Ax - y).

For CT and multi-coil MRI (:math:`A_g` the group's angles or coils alone) a group's
gradient costs about :math:`1/G` of the full one; for single-coil MRI the FFTs are
full-size whatever the group.

:func:`held_out_folds` splits the measurements the other way, for cross-validation
without ground truth (:mod:`deqbench.tuning`): K folds of CT views or of sampled k-space
columns outside the centre, each fold held out once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator

import torch
from deepinv.physics import MRI, LinearPhysics, MultiCoilMRI, Tomography

from deqbench.tasks import MatrixTomography


def full_gradient(x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
    """:math:`\\nabla f(x) = A^H(Ax - y)`."""
    return physics.A_adjoint(physics.A(x) - y)


def angle_groups(physics: Tomography, count: int) -> list[Tomography]:
    """CT operators over the angles ``g, g + count, g + 2 count, ...`` for ``g < count``,
    scaled by the full operator's norm (deepinv's ``split_physics``, which needs groups
    of equal size)."""
    if isinstance(physics, MatrixTomography):
        return [physics.angle_subset(torch.arange(g, len(physics.angles), count)) for g in range(count)]
    groups = []
    for g in range(count):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group = Tomography(angles=physics.angles[g::count], img_width=physics.img_width,
                               circle=physics.radon.circle, normalize=False,
                               parallel_computation=physics.radon.parallel_computation,
                               adjoint_via_backprop=physics.adjoint_via_backprop,
                               device=physics.angles.device, dtype=physics.radon.all_grids.dtype)
        if physics.normalize:
            group.register_buffer("operator_norm", physics.operator_norm.detach().clone())
            group.normalize = True
        groups.append(group)
    return groups


def coil_groups(physics: MultiCoilMRI, count: int) -> list[MultiCoilMRI]:
    """Multi-coil MRI operators over the coils ``g, g + count, g + 2 count, ...`` for
    ``g < count``: the same mask on a slice of the coil maps, so that only those coils'
    FFTs are computed."""
    return [MultiCoilMRI(mask=physics.mask, coil_maps=physics.coil_maps[:, g::count], img_size=physics.img_size,
                         device=physics.mask.device) for g in range(count)]


def centre_columns(sampled: torch.Tensor) -> torch.Tensor:
    """Indices of the contiguous run of sampled k-space columns around the centre."""
    centre = len(sampled) // 2
    left = right = centre
    while left > 0 and sampled[left - 1]:
        left -= 1
    while right + 1 < len(sampled) and sampled[right + 1]:
        right += 1
    return torch.arange(left, right + 1) if sampled[centre] else torch.arange(0)


def outer_columns(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled k-space columns of a Cartesian ``mask`` outside its fully sampled centre,
    and the centre's columns."""
    sampled = mask.reshape(-1, *mask.shape[-2:])[0].amin(dim=0) > 0
    centre = centre_columns(sampled)
    sampled[centre] = False
    return torch.nonzero(sampled).flatten(), centre


Part = tuple[LinearPhysics, Callable[[torch.Tensor], torch.Tensor]]  # (operator, y -> its measurements)


def held_out_folds(physics: LinearPhysics, folds: int) -> Iterator[tuple[Part, Part]]:
    """``folds`` splits of the measurements into (kept, held out), every measurement unit
    held out in exactly one: CT views ``f, f + K, f + 2K, ...``; MRI the sampled k-space
    columns outside the fully sampled centre, taken likewise (the centre, which carries most
    of the energy, is always kept). A part is its operator and the function that takes its
    measurements out of the full ``y``."""
    if isinstance(physics, MatrixTomography):
        views = torch.arange(len(physics.angles))
        for fold in range(folds):
            kept, held = views[views % folds != fold], views[fold::folds]
            yield ((physics.angle_subset(kept), lambda y, kept=kept: y[..., kept]),
                   (physics.angle_subset(held), lambda y, held=held: y[..., held]))
        return
    if not isinstance(physics, MRI | MultiCoilMRI):
        raise TypeError(f"held-out measurements: no folds for {type(physics).__name__}")
    mask = physics.mask
    columns, _ = outer_columns(mask)
    coils = isinstance(physics, MultiCoilMRI)

    def part(column_mask: torch.Tensor) -> Part:
        operator = (MultiCoilMRI(mask=column_mask, coil_maps=physics.coil_maps, img_size=physics.img_size,
                                 device=mask.device) if coils else
                    MRI(mask=column_mask, img_size=physics.img_size, device=mask.device))
        return operator, lambda y: y * (column_mask[:, :, None] if coils else column_mask)

    for fold in range(folds):
        held = torch.zeros_like(mask).index_fill_(-1, columns[fold::folds], 1) * mask
        yield part(mask - held), part(held)


class MeasurementGroups:
    """The measurement groups of a physics (module docstring), built at first use and
    kept while the physics is the same object."""

    def __init__(self, blocks: int):
        self.blocks = blocks
        self._built_for = (None, [], None)  # (physics, groups, kept)

    def groups(self, physics: LinearPhysics) -> tuple[list, torch.Tensor | None]:
        """The groups (CT, multi-coil MRI: one subset physics each; single-coil MRI: one
        column mask each) and the mask of the columns kept in every draw (single-coil
        MRI; ``None`` otherwise)."""
        if physics is not self._built_for[0]:
            if isinstance(physics, Tomography):
                groups, kept = angle_groups(physics, math.ceil(len(physics.angles) / self.blocks)), None
            elif isinstance(physics, MultiCoilMRI):
                groups, kept = coil_groups(physics, math.ceil(physics.coil_maps.shape[1] / self.blocks)), None
            else:
                mask = physics.mask.reshape(-1, *physics.mask.shape[-2:])[0]
                columns, centre = outer_columns(mask)
                count = math.ceil(len(columns) / self.blocks)
                groups = [torch.zeros_like(mask).index_fill_(1, columns[g::count], 1) for g in range(count)]
                kept = torch.zeros_like(mask).index_fill_(1, centre, 1)
            self._built_for = (physics, groups, kept)
        return self._built_for[1:]

    def count(self, physics: LinearPhysics) -> int:
        """:math:`G`, the number of groups."""
        return len(self.groups(physics)[0])

    def gradient(self, x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics,
                 chosen: list[int], scale: float) -> torch.Tensor:
        """:math:`A_C^H(A_C x - y_C) + \\text{scale} \\sum_{g \\in \\text{chosen}} A_g^H(A_g x - y_g)`."""
        groups, kept = self.groups(physics)
        if isinstance(physics, Tomography):  # group g holds angles g, g + G, g + 2G, ...
            return scale * sum(groups[g].A_adjoint(groups[g].A(x) - y[..., g::len(groups)]) for g in chosen)
        if isinstance(physics, MultiCoilMRI):  # group g holds coils g, g + G, g + 2G, ...
            return scale * sum(groups[g].A_adjoint(groups[g].A(x) - y[:, :, g::len(groups)]) for g in chosen)
        return physics.A_adjoint((kept + scale * sum(groups[g] for g in chosen)) * (physics.A(x) - y))


class SeededDraws(torch.nn.Module):
    """A generator for the random draws of one model call, reseeded at the start of every
    call from ``seed`` and the number of calls so far, a buffer saved with the weights,
    so runs and resumed runs repeat exactly. :meth:`deqbench.blocks.Step.one_call`
    reseeds every ``SeededDraws`` of a step."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator()

    def new_call(self) -> None:
        self.generator.manual_seed(self.seed * 1_000_003 + int(self.calls))
        self.calls += 1


def draws_at_random(module: object) -> bool:
    """Whether ``module`` (a model, a data gradient) holds a :class:`SeededDraws`."""
    return isinstance(module, torch.nn.Module) and any(isinstance(m, SeededDraws) for m in module.modules())
