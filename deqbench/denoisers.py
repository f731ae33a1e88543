"""Gaussian denoisers of a task's clean images, for plug-and-play methods (PnP, RED).

A method whose ``method.yaml`` says ``training: denoiser`` is a :class:`PlugAndPlay`
model: a deepinv optimiser whose prior calls ``model.denoiser`` (for PnP and RED, a
:func:`dncnn`). Its train step fits that denoiser alone, not the reconstruction end to end:

.. math:: \\min_\\theta\\; \\mathbb{E}_{x, n}\\, \\|D_\\theta(x + \\sigma n) - x\\|^2,
   \\qquad n \\sim \\mathcal{N}(0, I),

with :math:`\\sigma` the config's ``training.denoiser_sigma``, a fresh noise draw at
every step and the run's budget (steps, batch size, learning rate). The clean images
:math:`x` depend on what the run's loss may see (:func:`clean_images`):

- under a loss that sees ground truth (``sup``): the task's clean training images;
- under one that does not (``ei``): grey patches of photographs that ship with
  scikit-image (:data:`PHOTOGRAPHS`: people, animals, objects, textures, the sky; no
  medical image, no phantom), an off-the-shelf denoiser as a user without ground truth
  would download one. Self-supervised denoising of the target domain (Noise2Noise-like
  Recorrupted-to-Recorrupted, SURE) is not offered: those losses need noisy *images* of
  the target with a known noise model, and the targets here are seen only through
  undersampled measurements, whose FBP / zero-filled images carry structured streaks and
  aliasing rather than white noise.

The same error on held-out images of the same source (the validation split; other
patches), with noise drawn once from a fixed seed, is recorded before and after training.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.models import DnCNN
from skimage import color, data, transform

from deqbench.losses import needs_ground_truth
from deqbench.measure import PeakMemory, timed
from deqbench.methods import MethodError, method_code
from deqbench.tasks import Task
from deqbench.training import seed_everything

# photographs bundled with scikit-image (no download), none of them medical or a phantom
PHOTOGRAPHS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass",
               "gravel", "moon", "rocket")


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


def photograph_patches(count: int, size: int, channels: int, seed: int) -> torch.Tensor:
    """``count`` grey ``size`` x ``size`` patches in [0, 1] of :data:`PHOTOGRAPHS`, each cut at
    a random place of a photograph shrunk by a random factor in [2, 6] (so that a patch
    holds objects, not only texture); two channels (complex images) get a zero imaginary
    part, like the MRI ground truths."""
    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in PHOTOGRAPHS]
    photos = [color.rgb2gray(p[..., :3]) if p.ndim == 3 else p / 255.0 for p in photos]
    patches = np.empty((count, size, size), dtype=np.float32)
    for i in range(count):
        photo = photos[rng.integers(len(photos))]
        factor = rng.uniform(2, 6)
        shape = [max(size, round(n / factor)) for n in photo.shape]
        small = transform.resize(photo, shape, anti_aliasing=True)
        top, left = (rng.integers(n - size + 1) for n in small.shape)
        patches[i] = small[top:top + size, left:left + size]
    images = torch.from_numpy(patches)[:, None]
    return torch.cat([images, torch.zeros_like(images)], dim=1) if channels == 2 else images


def clean_images(task: Task, loss: str, seed: int) -> dict[str, torch.Tensor]:
    """The denoiser's ``train`` and ``val`` images (module docstring): the task's clean images
    under a loss that sees ground truth, as many photograph patches otherwise."""
    if needs_ground_truth(loss):
        return {split: task.splits[split]["x"] for split in ("train", "val")}
    return {split: photograph_patches(len(task.splits[split]["y"]), task.image_size, task.channels, seed + offset)
            for offset, split in enumerate(("train", "val"))}


@torch.no_grad()
def denoising_error(denoiser: torch.nn.Module, clean: torch.Tensor, sigma: float, seed: int) -> float:
    """Mean squared error :math:`\\|D(x + \\sigma n) - x\\|^2 / N` with :math:`n` drawn from ``seed``."""
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)).to(clean.device)
    return F.mse_loss(denoiser(clean + sigma * noise), clean).item()


def train_denoiser(model: torch.nn.Module, task: Task, loss: str, settings: dict, seed: int,
                   device: torch.device) -> dict:
    """Fit ``model.denoiser`` in place on the :func:`clean_images` of the run's ``loss``; the
    training record.

    ``settings``: ``steps``, ``batch_size``, ``lr``, ``denoiser_sigma``. A method's own
    failure (no ``denoiser``, exception, non-finite loss) raises :class:`MethodError`.
    """
    denoiser = getattr(model, "denoiser", None)
    if not isinstance(denoiser, torch.nn.Module):
        raise MethodError("a method with 'training: denoiser' must expose its denoiser as model.denoiser")
    seed_everything(seed, device)
    sigma = settings["denoiser_sigma"]
    images = clean_images(task, loss, seed)
    clean, val = images["train"].to(device), images["val"].to(device)
    batches = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device).manual_seed(seed + 1)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=settings["lr"])
    with method_code("denoiser training"):
        before = denoising_error(denoiser, val, sigma, seed)
        history, step_times, step_cpu_times = [], [], []
        denoiser.train()
        with PeakMemory(device) as memory:
            for step in range(settings["steps"]):
                x = clean[torch.randint(len(clean), (settings["batch_size"],), generator=batches)]
                with timed(device) as step_time:
                    optimizer.zero_grad(set_to_none=True)
                    noisy = x + sigma * torch.randn(x.shape, generator=noise, device=device)
                    error = F.mse_loss(denoiser(noisy), x)
                    error.backward()
                    if not math.isfinite(error.item()):
                        raise MethodError(f"denoiser step {step}: loss is {error.item()} (diverged)")
                    optimizer.step()
                step_times.append(step_time["seconds"])
                step_cpu_times.append(step_time["cpu_seconds"])
                history.append(error.item())
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
        "step_cpu_time_median_s": statistics.median(step_cpu_times),
        "train_peak_memory_mb": memory.peak_mb,
        "memory_kind": memory.kind,
        "parameters": sum(p.numel() for p in denoiser.parameters() if p.requires_grad),
        "denoiser": {"sigma": sigma, "val_mse_before": before, "val_mse_after": after,
                     "images": "task training images" if needs_ground_truth(loss) else "photographs"},
    }
