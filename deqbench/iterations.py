r"""The iteration shared by the DEQ and unrolled methods, and the models built on it.

One step is a gradient step on the RED objective
:math:`\tfrac12\|Ax - y\|^2 + \tfrac\tau2 \langle x, x - D_\theta(x)\rangle`
(Romano, Elad, Milanfar 2017; RED-DEQ and ODER of Liu et al. 2022):

.. math::  F_\theta(x) = x - \gamma \big(\nabla f(x) + \tau (x - D_\theta(x))\big),
           \qquad \nabla f(x) = A^H (A x - y),

with the denoiser :math:`D_\theta(x) = (1 - \mu) x + N_\theta(x)`: a fixed shrinkage
:math:`\mu` (``shrinkage``) plus the convolutional body :math:`N_\theta` of deepinv's
DnCNN, so that :math:`F_\theta(x) = \big((1 - \gamma\tau\mu) I - \gamma A^H A\big) x
+ \gamma\tau N_\theta(x) + \gamma A^H y`.

Contractivity control:

- every convolution of :math:`N_\theta` is divided by :math:`\max(1, \|W\|_{op} / b)`,
  :math:`b = \ell^{1/\text{depth}}`, its operator norm estimated by power iteration on
  the convolution itself (the reshaped-kernel norm of ``torch.nn.utils.spectral_norm``
  under-estimates it), so :math:`\mathrm{Lip}(N_\theta) \le \ell` (``lipschitz``);
- with :math:`\gamma (\|A\|^2 + \tau\mu) \le 1` (``step``) the linear part is
  positive semi-definite and

  .. math::  \mathrm{Lip}(F_\theta) \le 1 - \gamma\big(\sigma_{\min}(A)^2 + \tau\mu\big) + \gamma\tau\ell,

  the bound :meth:`REDStep.contraction_bound` returns;
- :math:`N_\theta` starts near zero (its last convolution scaled down), so at
  initialisation the map contracts by :math:`1 - \gamma\tau\mu` even on the null space
  of :math:`A`, which only the denoiser can contract: without the shrinkage the
  backward solve cannot converge there (eigenvalue one) and training on undersampled
  MRI drifts into a non-contractive map.

The bound is below one only when :math:`\ell < \mu + \sigma_{\min}^2 / \tau`, i.e. for a
weak denoiser on sparse-view CT or undersampled MRI (:math:`\sigma_{\min} = 0`); a
denoiser that contractive costs several dB on the default tasks, so the defaults allow
:math:`\ell = 1` and contraction is checked where it matters, at the fixed point, at
run time: every solve reports its iterations and final residual, and a forward or
backward solve that hits its cap is flagged (a backward solve that does not converge
means :math:`J^\top` has spectral radius one or more at :math:`x^\star` and the implicit
gradient is not valid).

ODER replaces :math:`\nabla f` by an unbiased estimate from a random subset of the
measurements at every evaluation (:class:`SubsampledGradient`).
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from deepinv.models import DnCNN
from deepinv.physics import LinearPhysics, MultiCoilMRI, Tomography
from torch.nn.utils import parametrize

from deqbench.solvers import SolverSettings, equilibrium
from deqbench.tasks import Task, initial_reconstruction

OPERATOR_NORM = 1.0  # ||A|| of every task's physics (normalised CT, masked unitary FFT, sum_c |S_c|^2 = 1)
POWER_ITERATIONS_AT_INIT = 50
INITIAL_RESIDUAL_SCALE = 1e-2


class ConvOperatorNorm(torch.nn.Module):
    """Parametrisation :math:`W \\mapsto W / \\max(1, \\|W\\|_{op} / b)` of a stride-1 convolution.

    :math:`\\|W\\|_{op}` is estimated by power iteration on the zero-padded convolution
    over ``size`` x ``size`` inputs, one step per training forward (Miyato et al. 2018
    applied to the operator, Gouk et al. 2021), converged at construction.
    """

    def __init__(self, weight: torch.Tensor, size: int, bound: float):
        super().__init__()
        self.bound, self.padding = bound, weight.shape[-1] // 2
        vector = torch.randn(1, weight.shape[1], size, size, dtype=weight.dtype)
        self.register_buffer("vector", vector / vector.norm())
        with torch.no_grad():
            for _ in range(POWER_ITERATIONS_AT_INIT):
                self.power_step(weight)

    def power_step(self, weight: torch.Tensor) -> None:
        image = F.conv2d(self.vector, weight, padding=self.padding)
        back = F.conv_transpose2d(image, weight, padding=self.padding)
        self.vector.copy_(back / back.norm())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.power_step(weight)
        norm = F.conv2d(self.vector.clone(), weight, padding=self.padding).norm()
        return weight * (self.bound / norm.clamp_min(self.bound))


class LipschitzDenoiser(torch.nn.Module):
    """:math:`D(x) = (1 - \\mu) x + N(x)`, :math:`\\mathrm{Lip}(N) \\le \\ell` (module docstring).

    ``N`` is deepinv's DnCNN body (``depth`` convolutions of ``width`` channels, ReLU),
    each convolution's operator norm capped at :math:`\\ell^{1/\\text{depth}}`;
    ``shrinkage`` is :math:`\\mu`, ``lipschitz`` :math:`\\ell`.
    """

    def __init__(self, channels: int, depth: int, width: int, lipschitz: float, shrinkage: float,
                 image_size: int):
        super().__init__()
        self.lipschitz, self.shrinkage = lipschitz, shrinkage
        self.dncnn = DnCNN(in_channels=channels, out_channels=channels, depth=depth, nf=width,
                           pretrained=None)  # its forward returns x + N(x)
        self.convs = [self.dncnn.in_conv, *self.dncnn.conv_list, self.dncnn.out_conv]
        with torch.no_grad():
            self.dncnn.out_conv.weight.mul_(INITIAL_RESIDUAL_SCALE)
        for conv in self.convs:
            parametrize.register_parametrization(
                conv, "weight", ConvOperatorNorm(conv.weight, image_size, lipschitz ** (1 / depth)))

    @contextmanager
    def normalised(self):
        """Normalise each weight once for the whole block (one power step in training),
        in the caller's grad mode, instead of at every call of the denoiser."""
        with parametrize.cached():
            for conv in self.convs:
                conv.weight  # noqa: B018 -- fills the cache
            yield

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dncnn(x) - self.shrinkage * x


class FullGradient(torch.nn.Module):
    """:math:`\\nabla f(x) = A^H(Ax - y)`."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        return physics.A_adjoint(physics.A(x) - y)


def angle_groups(physics: Tomography, count: int) -> list[Tomography]:
    """CT operators over the angles ``g, g + count, g + 2 count, ...`` for ``g < count``,
    scaled by the full operator's norm (deepinv's ``split_physics``, which needs groups
    of equal size)."""
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


class SubsampledGradient(torch.nn.Module):
    r"""Unbiased stochastic :math:`\nabla f` from a random subset of the measurements (ODER).

    The measurement units (CT view angles; multi-coil MRI: the coils; single-coil MRI:
    the sampled k-space columns outside the fully sampled centre) are split in
    acquisition order into ``blocks`` contiguous blocks, and the units at the same offset
    in every block form a group, so each group spans the whole angular range (the coils
    all around the image, or k-space). Each call draws :math:`b` of the :math:`G` groups
    uniformly without replacement, as in the public ODER code (90 angles, 5 blocks, 30
    angles a draw), and returns

    .. math::  A_C^H(A_C x - y_C) + \frac{G}{b}\sum_{g \in S} A_g^H(A_g x - y_g),

    :math:`C` the units kept in every draw (the single-coil MRI centre columns, which
    carry most of the energy; none for CT and multi-coil MRI). Each group is drawn with
    probability :math:`b/G`, so the expectation is :math:`A^H(Ax - y)`;
    :math:`b = \max(1, \mathrm{round}(\texttt{fraction}\cdot G))`.
    For CT and multi-coil MRI (:math:`A_g` the drawn coils alone, :math:`y_g = M F S_g x
    + \epsilon_g`) the cost of a step falls with :math:`b/G`; for single-coil MRI the FFTs
    are full-size whatever the subset, so only the variance changes.

    Draws come from a generator seeded by ``seed`` and the number of model calls so
    far, a buffer saved with the weights, so runs and resumed runs repeat exactly.
    """

    def __init__(self, blocks: int, fraction: float, seed: int):
        super().__init__()
        self.blocks, self.fraction, self.seed = blocks, fraction, seed
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator()
        self._groups_of = (None, [], None)  # (physics, groups, kept); a tuple, so not a submodule

    def new_call(self) -> None:
        """Reseed for one call of the model (before its iterations)."""
        self.generator.manual_seed(self.seed * 1_000_003 + int(self.calls))
        self.calls += 1

    def groups(self, physics: LinearPhysics) -> tuple[list, torch.Tensor | None]:
        """The groups (CT, multi-coil MRI: one subset physics each; single-coil MRI: one
        column mask each) and the mask of the columns kept in every draw (single-coil
        MRI; ``None`` otherwise)."""
        if physics is not self._groups_of[0]:
            if isinstance(physics, Tomography):
                groups, kept = angle_groups(physics, math.ceil(len(physics.angles) / self.blocks)), None
            elif isinstance(physics, MultiCoilMRI):
                groups, kept = coil_groups(physics, math.ceil(physics.coil_maps.shape[1] / self.blocks)), None
            else:
                mask = physics.mask.reshape(-1, *physics.mask.shape[-2:])[0]
                sampled = mask.amin(dim=0) > 0
                centre = centre_columns(sampled)
                sampled[centre] = False
                columns = torch.nonzero(sampled).flatten()
                count = math.ceil(len(columns) / self.blocks)
                groups = [torch.zeros_like(mask).index_fill_(1, columns[g::count], 1) for g in range(count)]
                kept = torch.zeros_like(mask).index_fill_(1, centre, 1)
            self._groups_of = (physics, groups, kept)
        return self._groups_of[1:]

    def estimate(self, x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics,
                 chosen: list[int], scale: float) -> torch.Tensor:
        """:math:`A_C^H(A_C x - y_C) + \\text{scale} \\sum_{g \\in \\text{chosen}} A_g^H(A_g x - y_g)`."""
        groups, kept = self.groups(physics)
        if isinstance(physics, Tomography):  # group g holds angles g, g + G, g + 2G, ...
            return scale * sum(groups[g].A_adjoint(groups[g].A(x) - y[..., g::len(groups)]) for g in chosen)
        if isinstance(physics, MultiCoilMRI):  # group g holds coils g, g + G, g + 2G, ...
            return scale * sum(groups[g].A_adjoint(groups[g].A(x) - y[:, :, g::len(groups)]) for g in chosen)
        return physics.A_adjoint((kept + scale * sum(groups[g] for g in chosen)) * (physics.A(x) - y))

    def forward(self, x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        count = len(self.groups(physics)[0])
        drawn = max(1, round(self.fraction * count))
        chosen = torch.randperm(count, generator=self.generator)[:drawn].tolist()
        return self.estimate(x, y, physics, chosen, count / drawn)


class REDStep(torch.nn.Module):
    """:math:`F(x) = x - \\gamma(\\nabla f(x) + \\tau(x - D(x)))` (module docstring)."""

    def __init__(self, denoiser: LipschitzDenoiser, gradient: torch.nn.Module, step: float,
                 regularization: float):
        super().__init__()
        self.denoiser, self.gradient = denoiser, gradient
        self.step, self.regularization = step, regularization

    def contraction_bound(self, smallest_singular_value: float = 0.0) -> float:
        """Upper bound on :math:`\\mathrm{Lip}(F)` (module docstring), ``inf`` where
        :math:`\\gamma(\\|A\\|^2 + \\tau\\mu) > 1`."""
        shrink = self.regularization * self.denoiser.shrinkage
        if self.step * (OPERATOR_NORM ** 2 + shrink) > 1:
            return math.inf
        return 1 - self.step * (smallest_singular_value ** 2 + shrink - self.regularization * self.denoiser.lipschitz)

    @contextmanager
    def one_call(self):
        """Context of one model call: fresh ODER draws, weights normalised once."""
        if isinstance(self.gradient, SubsampledGradient):
            self.gradient.new_call()
        with self.denoiser.normalised():
            yield

    def forward(self, x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        prior = x - self.denoiser(x)
        return x - self.step * (self.gradient(x, y, physics) + self.regularization * prior)


class DeepEquilibrium(torch.nn.Module):
    """:math:`\\hat x = x^\\star = F_\\theta(x^\\star)` from the FBP / zero-filled start.

    ``backward=None`` trains by Jacobian-free backpropagation, otherwise by implicit
    differentiation. ``stats`` holds the solver statistics of the latest forward and
    backward solves (:func:`deqbench.solvers.equilibrium`).
    """

    def __init__(self, step: REDStep, forward: SolverSettings, backward: SolverSettings | None):
        super().__init__()
        self.step, self.forward_settings, self.backward_settings = step, forward, backward
        self.stats: dict[str, float] = {}

    def forward(self, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        with self.step.one_call():
            return equilibrium(lambda x: self.step(x, y, physics), initial_reconstruction(y, physics),
                               self.forward_settings, self.backward_settings, self.stats)


class Unrolled(torch.nn.Module):
    """:math:`\\hat x = F_\\theta^K(x_0)`, ``iterations`` = K steps, backpropagated through all."""

    def __init__(self, step: REDStep, iterations: int):
        super().__init__()
        self.step, self.iterations = step, iterations

    def forward(self, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        x = initial_reconstruction(y, physics)
        with self.step.one_call():
            for _ in range(self.iterations):
                x = self.step(x, y, physics)
        return x


def build_step(hparams: dict, task: Task) -> REDStep:
    """The step from a method's hyperparameters: ``denoiser`` (``depth``, ``width``,
    ``lipschitz``, ``shrinkage``), ``step``, ``regularization`` and, for ODER,
    ``subsampling`` (``blocks``, ``fraction``, ``seed``)."""
    denoiser = LipschitzDenoiser(task.channels, image_size=task.image_size, **hparams["denoiser"])
    sub = hparams.get("subsampling")
    gradient = SubsampledGradient(**sub) if sub else FullGradient()
    step = REDStep(denoiser, gradient, hparams["step"], hparams["regularization"])
    if step.contraction_bound() == math.inf:
        warnings.warn(f"step {step.step} exceeds 1 / (||A||^2 + regularization * shrinkage): the "
                      "linear part of the iteration expands; watch the fixed-point statistics", stacklevel=2)
    return step


def build_equilibrium(hparams: dict, task: Task) -> DeepEquilibrium:
    """A DEQ from hyperparameters: those of :func:`build_step`, ``forward`` and
    ``backward`` solver settings (:class:`deqbench.solvers.SolverSettings`) and
    ``gradient``: ``implicit`` or ``jacobian_free``."""
    if hparams["gradient"] not in ("implicit", "jacobian_free"):
        raise ValueError(f"gradient must be 'implicit' or 'jacobian_free', not '{hparams['gradient']}'")
    backward = SolverSettings.from_dict(hparams["backward"]) if hparams["gradient"] == "implicit" else None
    return DeepEquilibrium(build_step(hparams, task), SolverSettings.from_dict(hparams["forward"]), backward)


def build_unrolled(hparams: dict, task: Task) -> Unrolled:
    """``iterations`` steps of :func:`build_step`'s iteration."""
    return Unrolled(build_step(hparams, task), hparams["iterations"])
