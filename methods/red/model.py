"""RED-GD: :math:`x_{k+1} = x_k - \\gamma\\,\\big(A^\\top(A x_k - y) + \\lambda\\,(x_k - D(x_k))\\big)`
from :math:`x_0 = A^\\dagger y`, for a fixed number of iterations; :math:`D` is trained as a
Gaussian denoiser (:mod:`deqbench.denoisers`), :math:`\\gamma, \\lambda` chosen on validation."""

from deepinv.optim import GD, RED
from deepinv.optim.data_fidelity import L2

from deqbench.denoisers import PlugAndPlay, dncnn
from deqbench.tasks import initial_reconstruction


def build(hparams, task):
    denoiser = dncnn(task.channels, **hparams["denoiser"])
    solver = GD(data_fidelity=L2(), prior=RED(denoiser), stepsize=hparams["stepsize"],
                lambda_reg=hparams["weight"], max_iter=hparams["iterations"],
                custom_init=initial_reconstruction)
    return PlugAndPlay(denoiser, solver)
