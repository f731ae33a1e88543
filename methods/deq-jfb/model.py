"""DEQ-JFB: the DEQ-ID fixed point, trained by Jacobian-free backpropagation."""

from deqbench.iterations import build_equilibrium


def build(hparams, task):
    return build_equilibrium(hparams, task)
