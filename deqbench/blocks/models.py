r"""Models made of one iteration :math:`x \mapsto F_\theta(x; y, A)`: its fixed point (DEQ)
or its first K iterates (unrolling), both from the FBP / zero-filled start :math:`x_0 = A^\dagger y`.

A method writes its iteration as a :class:`Step` subclass, whose ``forward(x, y, physics)``
is its equation, and wraps it in :class:`DeepEquilibrium` or :class:`Unrolled`.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager

import torch
from deepinv.physics import LinearPhysics

from deqbench.blocks.data import SeededDraws
from deqbench.blocks.denoiser import LipschitzDenoiser
from deqbench.blocks.solvers import Gradient, SolverSettings, equilibrium
from deqbench.tasks import OPERATOR_NORM, initial_reconstruction


class Step(torch.nn.Module):
    """One iteration :math:`F_\\theta(x; y, A)` built from a ``denoiser`` and a
    ``data_gradient`` (a callable ``(x, y, physics)``, :func:`deqbench.blocks.full_gradient`
    or a module of the method's own); the keyword arguments become attributes (step
    sizes, weights). Subclasses define ``forward(x, y, physics)``."""

    def __init__(self, denoiser: torch.nn.Module, data_gradient, **scalars: float):
        super().__init__()
        self.denoiser, self.data_gradient = denoiser, data_gradient
        for name, value in scalars.items():
            setattr(self, name, value)

    @contextmanager
    def one_call(self):
        """Context of one model call: every :class:`SeededDraws` reseeded, every
        :class:`LipschitzDenoiser` weight normalised once."""
        with ExitStack() as stack:
            for module in self.modules():
                if isinstance(module, SeededDraws):
                    module.new_call()
                elif isinstance(module, LipschitzDenoiser):
                    stack.enter_context(module.normalised())
            yield


class DeepEquilibrium(torch.nn.Module):
    """:math:`\\hat x = x^\\star = F_\\theta(x^\\star)` from :math:`x_0 = A^\\dagger y`, solved with
    ``forward`` settings and differentiated by ``gradient``
    (:class:`deqbench.blocks.ImplicitGradient` or :class:`deqbench.blocks.JacobianFreeGradient`).
    ``stats`` holds the statistics of the latest forward and backward solves
    (:func:`deqbench.blocks.solvers.equilibrium`)."""

    def __init__(self, step: Step, forward: SolverSettings, gradient: Gradient):
        super().__init__()
        self.step, self.forward_settings, self.gradient = step, forward, gradient
        self.stats: dict[str, float] = {}

    def forward(self, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        with self.step.one_call():
            return equilibrium(lambda x: self.step(x, y, physics), initial_reconstruction(y, physics),
                               self.forward_settings, self.gradient, self.stats)


class Unrolled(torch.nn.Module):
    """:math:`\\hat x = F_\\theta^K(x_0)`, ``iterations`` = K steps, backpropagated through all."""

    def __init__(self, step: Step, iterations: int):
        super().__init__()
        self.step, self.iterations = step, iterations

    def forward(self, y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
        x = initial_reconstruction(y, physics)
        with self.step.one_call():
            for _ in range(self.iterations):
                x = self.step(x, y, physics)
        return x


def red_contraction_bound(step: float, regularization: float, denoiser: LipschitzDenoiser,
                          smallest_singular_value: float = 0.0) -> float:
    r"""Upper bound on :math:`\mathrm{Lip}(F)` of the RED step
    :math:`F(x) = x - \gamma\big(A^H(Ax - y) + \tau(x - D(x))\big)` with a
    :class:`LipschitzDenoiser` :math:`D = (1 - \mu) I + N`:
    :math:`F(x) = \big((1 - \gamma\tau\mu) I - \gamma A^H A\big) x + \gamma\tau N(x) + \gamma A^H y`.
    With :math:`\gamma(\|A\|^2 + \tau\mu) \le 1` the linear part is positive semi-definite and

    .. math::  \mathrm{Lip}(F) \le 1 - \gamma\big(\sigma_{\min}(A)^2 + \tau\mu\big) + \gamma\tau\ell,

    below one only when :math:`\ell < \mu + \sigma_{\min}^2 / \tau` (on sparse-view CT and
    undersampled MRI :math:`\sigma_{\min} = 0`); ``inf`` where :math:`\gamma(\|A\|^2 + \tau\mu) > 1`.
    """
    shrink = regularization * denoiser.shrinkage
    if step * (OPERATOR_NORM ** 2 + shrink) > 1:
        return math.inf
    return 1 - step * (smallest_singular_value ** 2 + shrink - regularization * denoiser.lipschitz)
