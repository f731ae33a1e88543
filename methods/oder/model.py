r"""ODER (Liu, Xu, Gan, Shoushtari, Kamilov, NeurIPS 2022): a RED DEQ whose data-consistency
gradient is an unbiased estimate from a random subset of the measurements at every
evaluation of the step, in training and at test time.

.. math::  F_\theta(x) = x - \gamma\big(\widehat{\nabla f}(x) + \tau\,(x - D_\theta(x))\big), \qquad
           \widehat{\nabla f}(x) = A_C^H(A_C x - y_C) + \frac{G}{b}\sum_{g \in S} A_g^H(A_g x - y_g),

:math:`S` drawn uniformly without replacement, :math:`b` of the :math:`G` stratified
measurement groups (:class:`deqbench.blocks.MeasurementGroups`: CT view angles, multi-coil
MRI coils, single-coil MRI k-space columns, :math:`C` the fully sampled centre kept in
every draw), :math:`b = \max(1, \mathrm{round}(\texttt{fraction}\cdot G))`. Each group is
drawn with probability :math:`b/G`, so :math:`\mathbb E\,\widehat{\nabla f} = A^H(Ax - y)`
(the public ODER code: 90 angles, 5 blocks, 30 angles a draw).

Forward: the public code's reconstruction (wustl-cig/ODER, ``iterAlgs.py``, ``Nesterov`` with
``accelerate=True``): Nesterov's acceleration of the stochastic iteration from
:math:`x_0 = s_0 = A^\dagger y`, :math:`t_0 = 1`,

.. math::  x_{k+1} = F_{S_k}(s_k), \quad t_{k+1} = \tfrac12\big(1 + \sqrt{1 + 4t_k^2}\big), \quad
           s_{k+1} = x_{k+1} + \frac{t_k - 1}{t_{k+1}}(x_{k+1} - x_k),

stopped once the relative change :math:`\|x_{k+1} - x_k\| / \|x_{k+1}\|` is below its
configuration's ``fixpot_tol`` (1e-4), capped at its ``num_iter`` (180), where the public loop
runs all 180 (``forward`` in ``method.yaml``). Anderson acceleration would extrapolate from
past evaluations of a map that changes at every evaluation. Measured (``method.yaml``), the
relative change stops at the draws' noise floor on CT, 1-3e-2, so every solve is capped, and
on MRI the iteration diverges: the momentum accumulates the draws' noise. At test time every
image is reconstructed ``evaluation.draws`` times and scored on the mean
(:mod:`deqbench.evaluation`).

Denoiser: the DnCNN-5 with Lipschitz control that every DEQ here shares, where the public
code has a small U-Net (depth 5, 32 channels, PReLU, GroupNorm), so that ODER differs from
DEQ-JFB in its data term and its iteration alone.

Gradient: Jacobian-free, as DEQ-JFB: the gradient of the last step
:math:`\hat x = F_S(x^\star)` under its own draw, :math:`J` taken as 0 (Fung et al. 2022).
The implicit backward :math:`v = J_S^\top v + g` with the Jacobian of a single draw was
measured and dropped: on the default tasks it stopped at its cap in half of the training
steps (CT sup 75 of 150, MRI 56-116 of 150) at residuals of 3e-3 to 1e-2, with gradient
cosines down to 0.07 against the implicit gradient of the DEQ that ODER approximates
(docs/deq-solvers.md, "ODER like for like"), and :math:`(I - J_S^\top)^{-1} g` is biased anyway (the
inverse is not linear). So ODER's gradient is DEQ-JFB's, and the fidelity columns say how
far it is from DEQ-ID's.
"""

import torch

from deqbench import blocks


class StochasticGradient(torch.nn.Module):
    """:math:`\\widehat{\\nabla f}`: ``fraction`` of the groups drawn at every call, rescaled by :math:`G/b`."""

    def __init__(self, block_count, fraction, seed):
        super().__init__()
        self.groups, self.fraction, self.draws = blocks.MeasurementGroups(block_count), fraction, blocks.SeededDraws(seed)

    def forward(self, x, y, physics):
        count = self.groups.count(physics)
        drawn = max(1, round(self.fraction * count))
        chosen = torch.randperm(count, generator=self.draws.generator)[:drawn].tolist()
        return self.groups.gradient(x, y, physics, chosen, scale=count / drawn)


class REDStep(blocks.Step):
    def forward(self, x, y, physics):  # F(x) = x - gamma (tau (x - D(x)) + grad_estimate(x))
        return x - self.step * (self.regularization * (x - self.denoiser(x)) + self.data_gradient(x, y, physics))


def build(hparams, task):
    denoiser = blocks.LipschitzDenoiser(task.channels, image_size=task.image_size, **hparams["denoiser"])
    sub = hparams["subsampling"]
    data_gradient = StochasticGradient(sub["blocks"], sub["fraction"], sub["seed"])
    step = REDStep(denoiser, data_gradient, step=hparams["step"], regularization=hparams["regularization"])
    return blocks.DeepEquilibrium(step, blocks.SolverSettings(**hparams["forward"]), blocks.JacobianFreeGradient())
