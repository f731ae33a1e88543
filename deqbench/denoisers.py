"""Gaussian denoisers of a task's clean images, for plug-and-play methods (PnP, RED).

A method whose ``method.yaml`` says ``training: denoiser`` is a :class:`PlugAndPlay`
model: a deepinv optimiser whose prior calls ``model.denoiser`` (for PnP and RED, a
:func:`dncnn`). Its train step fits that denoiser alone, not the reconstruction end to end:

.. math:: \\min_\\theta\\; \\mathbb{E}_{x, n}\\, \\|D_\\theta(x + \\sigma n) - x\\|^2,
   \\qquad n \\sim \\mathcal{N}(0, I),

over the clean training images :math:`x` of the task, with :math:`\\sigma` the
config's ``training.denoiser_sigma``, a fresh noise draw at every step and the run's
budget (steps, batch size, learning rate). The same error on the validation images,
with noise drawn once from a fixed seed, is recorded before and after training.
"""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F
from deepinv.models import DnCNN

from deqbench.measure import PeakMemory, timed
from deqbench.methods import MethodError, method_code
from deqbench.tasks import Task
from deqbench.training import seed_everything


def dncnn(channels: int, depth: int, width: int) -> DnCNN:
    """deepinv's residual DnCNN, :math:`D(x) = x + N(x)`, ``depth`` convolutions of ``width``
    features, its last convolution zeroed so that it starts as the identity: training
    begins from "no denoising" rather than from a random perturbation."""
    denoiser = DnCNN(channels, channels, depth=depth, nf=width, pretrained=None)
    torch.nn.init.zeros_(denoiser.out_conv.weight)
    torch.nn.init.zeros_(denoiser.out_conv.bias)
    return denoiser


class PlugAndPlay(torch.nn.Module):
    """:math:`\\hat x = \\mathrm{solver}(y, A)`, a deepinv optimiser whose prior uses ``denoiser``."""

    def __init__(self, denoiser: torch.nn.Module, solver: torch.nn.Module):
        super().__init__()
        self.denoiser = denoiser
        self.solver = solver

    def forward(self, y: torch.Tensor, physics) -> torch.Tensor:
        return self.solver(y, physics)


@torch.no_grad()
def denoising_error(denoiser: torch.nn.Module, clean: torch.Tensor, sigma: float, seed: int) -> float:
    """Mean squared error :math:`\\|D(x + \\sigma n) - x\\|^2 / N` with :math:`n` drawn from ``seed``."""
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)).to(clean.device)
    return F.mse_loss(denoiser(clean + sigma * noise), clean).item()


def train_denoiser(model: torch.nn.Module, task: Task, settings: dict, seed: int,
                   device: torch.device) -> dict:
    """Fit ``model.denoiser`` in place on the task's clean training images; the training record.

    ``settings``: ``steps``, ``batch_size``, ``lr``, ``denoiser_sigma``. A method's own
    failure (no ``denoiser``, exception, non-finite loss) raises :class:`MethodError`.
    """
    denoiser = getattr(model, "denoiser", None)
    if not isinstance(denoiser, torch.nn.Module):
        raise MethodError("a method with 'training: denoiser' must expose its denoiser as model.denoiser")
    seed_everything(seed, device)
    sigma = settings["denoiser_sigma"]
    clean, val = task.splits["train"]["x"].to(device), task.splits["val"]["x"].to(device)
    batches = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device).manual_seed(seed + 1)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=settings["lr"])
    with method_code("denoiser training"):
        before = denoising_error(denoiser, val, sigma, seed)
        history, step_times = [], []
        denoiser.train()
        with PeakMemory(device) as memory:
            for step in range(settings["steps"]):
                x = clean[torch.randint(len(clean), (settings["batch_size"],), generator=batches)]
                with timed(device) as step_time:
                    optimizer.zero_grad(set_to_none=True)
                    noisy = x + sigma * torch.randn(x.shape, generator=noise, device=device)
                    loss = F.mse_loss(denoiser(noisy), x)
                    loss.backward()
                    if not math.isfinite(loss.item()):
                        raise MethodError(f"denoiser step {step}: loss is {loss.item()} (diverged)")
                    optimizer.step()
                step_times.append(step_time["seconds"])
                history.append(loss.item())
        denoiser.eval()
        after = denoising_error(denoiser, val, sigma, seed)
    return {
        "steps": settings["steps"],
        "batch_size": settings["batch_size"],
        "lr": settings["lr"],
        "final_loss": statistics.fmean(history[-10:]),
        "loss_history": history,
        "train_time_s": sum(step_times),
        "step_time_median_s": statistics.median(step_times),
        "train_peak_memory_mb": memory.peak_mb,
        "memory_kind": memory.kind,
        "parameters": sum(p.numel() for p in denoiser.parameters() if p.requires_grad),
        "denoiser": {"sigma": sigma, "val_mse_before": before, "val_mse_after": after},
    }
