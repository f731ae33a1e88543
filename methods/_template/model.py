"""Residual CNN: :math:`\\hat x = A^\\dagger y + g_\\theta(A^\\dagger y)`."""

import torch

from deqbench.tasks import initial_reconstruction


class ResidualCNN(torch.nn.Module):
    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, channels, 3, padding=1),
        )

    def forward(self, y, physics):
        x0 = initial_reconstruction(y, physics)
        return x0 + self.net(x0)


def build(hparams, task):
    """``task.channels`` is 1 for CT and 2 (real, imaginary) for MRI."""
    return ResidualCNN(task.channels, hparams["width"])
