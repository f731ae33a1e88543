"""ODER: DEQ-ID with a stochastic, unbiased data-consistency gradient at every iteration."""

from deqbench.iterations import build_equilibrium


def build(hparams, task):
    return build_equilibrium(hparams, task)
