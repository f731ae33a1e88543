"""Unrolled: :math:`\\hat x = F_\\theta^K(x_0)` with the DEQ methods' step, backpropagated through all K."""

from deqbench.iterations import build_unrolled


def build(hparams, task):
    return build_unrolled(hparams, task)
