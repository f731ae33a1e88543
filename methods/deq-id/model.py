r"""DEQ-ID: the fixed point of a RED gradient step, trained by implicit differentiation.

.. math::  \hat x = x^\star = F_\theta(x^\star), \qquad
           F_\theta(x) = x - \gamma\big(A^H(Ax - y) + \tau\,(x - D_\theta(x))\big),

a gradient step on the RED objective :math:`\tfrac12\|Ax - y\|^2 + \tfrac\tau2\langle x, x - D_\theta(x)\rangle`
(Romano et al. 2017) with a Lipschitz-controlled DnCNN :math:`D_\theta`, solved by Anderson
acceleration from :math:`x_0 = A^\dagger y`. Gradient: the implicit function theorem,
:math:`v = J^\top v + g` solved at :math:`x^\star` (Bai et al. 2019; Gilton et al. 2021).
"""

from deqbench import blocks


class REDStep(blocks.Step):
    def forward(self, x, y, physics):  # F(x) = x - gamma (tau (x - D(x)) + A^H(Ax - y))
        return x - self.step * (self.regularization * (x - self.denoiser(x)) + self.data_gradient(x, y, physics))


def build(hparams, task):
    denoiser = blocks.LipschitzDenoiser(task.channels, image_size=task.image_size, **hparams["denoiser"])
    step = REDStep(denoiser, blocks.full_gradient, step=hparams["step"], regularization=hparams["regularization"])
    backward = blocks.ImplicitGradient(blocks.SolverSettings(**hparams["backward"]))
    return blocks.DeepEquilibrium(step, blocks.SolverSettings(**hparams["forward"]), backward)
