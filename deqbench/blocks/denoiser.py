r"""A denoiser with a controlled Lipschitz constant, for iterations that must contract.

:math:`D_\theta(x) = (1 - \mu) x + N_\theta(x)`: a fixed shrinkage :math:`\mu`
(``shrinkage``) plus the convolutional body :math:`N_\theta` of deepinv's DnCNN. Every
convolution of :math:`N_\theta` is divided by :math:`\max(1, \|W\|_{op} / b)`,
:math:`b = \ell^{1/\text{depth}}`, its operator norm estimated by power iteration on the
convolution itself (the reshaped-kernel norm of ``torch.nn.utils.spectral_norm``
under-estimates it), so :math:`\mathrm{Lip}(N_\theta) \le \ell` (``lipschitz``) and
:math:`\mathrm{Lip}(D_\theta) \le 1 - \mu + \ell`.

:math:`N_\theta` starts near zero (its last convolution scaled down), so at
initialisation :math:`D_\theta` contracts by :math:`1 - \mu` everywhere, including the
null space of an undersampling operator, where only the denoiser can contract an
iteration: without the shrinkage a backward solve cannot converge there (eigenvalue one).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from deepinv.models import DnCNN
from torch.nn.utils import parametrize

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
    each convolution's operator norm capped at :math:`\\ell^{1/\\text{depth}}` over
    ``image_size`` x ``image_size`` images; ``shrinkage`` is :math:`\\mu`, ``lipschitz``
    :math:`\\ell`.
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
