"""U-Net post-processing: :math:`\\hat x = f_\\theta(A^\\dagger y)`, with :math:`A^\\dagger`
filtered back-projection (CT) or the zero-filled inverse FFT (MRI)."""

import torch
from deepinv.models import UNet

from deqbench.tasks import initial_reconstruction


class PostProcessing(torch.nn.Module):
    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, y, physics):
        return self.net(initial_reconstruction(y, physics))


def build(hparams, task):
    return PostProcessing(UNet(in_channels=task.channels, out_channels=task.channels,
                               scales=hparams["scales"], batch_norm=False,
                               channels_per_scale=hparams["channels_per_scale"]))
