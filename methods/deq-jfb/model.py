r"""DEQ-JFB: the fixed point of DEQ-ID's RED step, trained by Jacobian-free backpropagation.

.. math::  \hat x = F_\theta(x^\star), \quad x^\star = F_\theta(x^\star), \qquad
           F_\theta(x) = x - \gamma\big(A^H(Ax - y) + \tau\,(x - D_\theta(x))\big);

the gradient is that of the last step alone, :math:`J = \partial F / \partial x` taken as
0 (Fung et al. 2022): no backward solve, at the price of an inexact gradient.
"""

from deqbench import blocks


class REDStep(blocks.Step):
    def forward(self, x, y, physics):  # F(x) = x - gamma (tau (x - D(x)) + A^H(Ax - y))
        return x - self.step * (self.regularization * (x - self.denoiser(x)) + self.data_gradient(x, y, physics))


def build(hparams, task):
    denoiser = blocks.LipschitzDenoiser(task.channels, image_size=task.image_size, **hparams["denoiser"])
    step = REDStep(denoiser, blocks.full_gradient, step=hparams["step"], regularization=hparams["regularization"])
    return blocks.DeepEquilibrium(step, blocks.SolverSettings(**hparams["forward"]), blocks.JacobianFreeGradient())
