r"""Unrolled: K iterations of DEQ-ID's RED step, trained by backpropagation through all of them.

.. math::  \hat x = F_\theta^K(x_0), \quad x_0 = A^\dagger y, \qquad
           F_\theta(x) = x - \gamma\big(A^H(Ax - y) + \tau\,(x - D_\theta(x))\big).
"""

from deqbench import blocks


class REDStep(blocks.Step):
    def forward(self, x, y, physics):  # F(x) = x - gamma (tau (x - D(x)) + A^H(Ax - y))
        return x - self.step * (self.regularization * (x - self.denoiser(x)) + self.data_gradient(x, y, physics))


def build(hparams, task):
    denoiser = blocks.LipschitzDenoiser(task.channels, image_size=task.image_size, **hparams["denoiser"])
    step = REDStep(denoiser, blocks.full_gradient, step=hparams["step"], regularization=hparams["regularization"])
    return blocks.Unrolled(step, hparams["iterations"])
