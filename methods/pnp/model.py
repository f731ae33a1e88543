"""PnP-PGD: :math:`x_{k+1} = z_k + \\lambda\\,(D(z_k) - z_k)`, :math:`z_k = x_k - \\gamma A^\\top(A x_k - y)`,
from :math:`x_0 = A^\\dagger y`, for a fixed number of iterations; :math:`D` is trained as a
Gaussian denoiser (:mod:`deqbench.denoisers`), :math:`\\gamma, \\lambda` chosen on validation."""

import torch
from deepinv.optim import PGD, PnP
from deepinv.optim.data_fidelity import L2

from deqbench.denoisers import PlugAndPlay, dncnn
from deqbench.tasks import initial_reconstruction


class Relaxed(torch.nn.Module):
    """:math:`D_\\lambda(x) = x + \\lambda (D(x) - x)`: :math:`\\lambda` weighs the prior."""

    def __init__(self, denoiser: torch.nn.Module, weight: float):
        super().__init__()
        self.denoiser = denoiser
        self.weight = weight

    def forward(self, x, sigma=None):
        return x + self.weight * (self.denoiser(x) - x)


def build(hparams, task):
    denoiser = dncnn(task.channels, **hparams["denoiser"])
    solver = PGD(data_fidelity=L2(), prior=PnP(Relaxed(denoiser, hparams["weight"])),
                 stepsize=hparams["stepsize"], max_iter=hparams["iterations"],
                 custom_init=initial_reconstruction)
    return PlugAndPlay(denoiser, solver)
