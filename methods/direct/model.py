"""Direct reconstruction :math:`\\hat x = A^\\dagger y`: FBP (CT) or zero-filled (MRI)."""

import torch

from deqbench.tasks import initial_reconstruction


class Direct(torch.nn.Module):
    def forward(self, y, physics):
        return initial_reconstruction(y, physics)


def build(hparams, task):
    return Direct()
