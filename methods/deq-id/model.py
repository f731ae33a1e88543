"""DEQ-ID: :math:`\\hat x = x^\\star = F_\\theta(x^\\star)`, gradients by implicit differentiation
(:mod:`deqbench.iterations` defines :math:`F_\\theta`, :mod:`deqbench.solvers` the solvers)."""

from deqbench.iterations import build_equilibrium


def build(hparams, task):
    return build_equilibrium(hparams, task)
