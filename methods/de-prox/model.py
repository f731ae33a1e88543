r"""DE-Prox (Gilton, Ongie, Willett 2021): the fixed point of a proximal-gradient step whose
proximal map is the learned denoiser, trained by implicit differentiation.

.. math::  \hat x = x^\star = F_\theta(x^\star), \qquad
           F_\theta(x) = D_\theta\big(x - \eta\, A^H(Ax - y)\big),

:math:`D_\theta` the DEQ methods' Lipschitz-controlled DnCNN, :math:`\eta \le 1 / \|A\|^2`
(``step``), so that the gradient step is non-expansive and
:math:`\mathrm{Lip}(F_\theta) \le \mathrm{Lip}(D_\theta) \le 1 - \mu + \ell`.
"""

from deqbench import blocks


class ProxGradientStep(blocks.Step):
    def forward(self, x, y, physics):  # F(x) = D(x - eta A^H(Ax - y))
        return self.denoiser(x - self.step * self.data_gradient(x, y, physics))


def build(hparams, task):
    denoiser = blocks.LipschitzDenoiser(task.channels, image_size=task.image_size, **hparams["denoiser"])
    step = ProxGradientStep(denoiser, blocks.full_gradient, step=hparams["step"])
    backward = blocks.ImplicitGradient(blocks.SolverSettings(**hparams["backward"]))
    return blocks.DeepEquilibrium(step, blocks.SolverSettings(**hparams["forward"]), backward)
