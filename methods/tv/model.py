"""TV: :math:`x_{k+1} = \\operatorname{prox}_{\\gamma\\lambda\\mathrm{TV}}\\big(x_k - \\gamma A^\\top(A x_k - y)\\big)`,
:math:`\\gamma = 1 = 1/\\|A\\|^2`, from :math:`x_0 = A^\\dagger y`, for a fixed number of iterations;
:math:`\\lambda` chosen on validation."""

import torch
from deepinv.optim import PGD, TVPrior
from deepinv.optim.data_fidelity import L2

from deqbench.tasks import initial_reconstruction


class TotalVariation(torch.nn.Module):
    def __init__(self, solver: PGD, prior: TVPrior):
        super().__init__()
        self.solver = solver
        self.prior = prior

    def forward(self, y, physics):
        self.prior.TVModel.restart = True  # warm-start the TV prox within one solve, not across solves
        return self.solver(y, physics)


def build(hparams, task):
    prior = TVPrior(n_it_max=hparams["inner_iterations"])
    solver = PGD(data_fidelity=L2(), prior=prior, stepsize=1.0, lambda_reg=hparams["weight"],
                 max_iter=hparams["iterations"], custom_init=initial_reconstruction)
    return TotalVariation(solver, prior)
