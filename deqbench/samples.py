"""Reconstructions of the first test images, kept for the report's figures.

Each is saved with its ground truth and the FBP / zero-filled input. A model that
exposes its iteration map as a ``step`` submodule (the DEQ and unrolled models of
:mod:`deqbench.blocks`) also gets the relative residual
:math:`\\|F(x_k) - x_k\\| / \\|F(x_k)\\|` of every evaluation of that map: for a DEQ, the
convergence history of its forward fixed-point solve.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from deqbench.blocks.solvers import relative_residual
from deqbench.tasks import Task, initial_reconstruction

SAMPLE_IMAGES = 3


@contextmanager
def residual_history(model: torch.nn.Module):
    """Collect the residual of each call of ``model.step`` into the yielded list
    (left empty for a model without such a submodule)."""
    history: list[float] = []
    step = getattr(model, "step", None)
    if not isinstance(step, torch.nn.Module):
        yield history
        return

    def record(_module, args, output):
        history.append(relative_residual(output, args[0]).max().item())

    handle = step.register_forward_hook(record)
    try:
        yield history
    finally:
        handle.remove()


@torch.no_grad()
def sample_reconstructions(model: torch.nn.Module, task: Task, device: torch.device,
                           count: int = SAMPLE_IMAGES) -> dict:
    """``index``, ``truth``, ``initial``, ``estimate`` (``(n, C, H, W)`` tensors on CPU) and
    ``residuals`` (one list per image) for the first ``count`` test images, one at a time."""
    split = task.splits["test"]
    ys = split["y"][:count].to(device)
    estimates, residuals = [], []
    for index in range(len(ys)):
        with residual_history(model) as history:
            estimates.append(model(ys[index:index + 1], task.physics).float().cpu())
        residuals.append(history)
    return {
        "index": torch.arange(len(ys)),
        "truth": split["x"][:count].float(),
        "initial": initial_reconstruction(ys, task.physics).float().cpu(),
        "estimate": torch.cat(estimates),
        "residuals": residuals,
    }
