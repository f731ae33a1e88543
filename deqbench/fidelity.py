r"""Is a DEQ's gradient what it claims? Measured on training batches.

The implicit gradient (:class:`deqbench.blocks.ImplicitGradient`) is exact only at an
exact fixed point, with an exactly solved backward equation, of a map that is contractive
near :math:`x^\star`. Every ``training.fidelity_every`` steps, on that step's batch, with
the same draws of every random generator (the step is replayed, then everything random is
put back, so measuring does not change training):

- ``gradient_relative_error`` :math:`\|g - g^\star\| / \|g^\star\|` and ``gradient_cosine``
  of the parameter gradient :math:`g` at the configured solver settings against
  :math:`g^\star`, with the forward and backward solves run to :data:`TIGHT`
  (``reference_converged``: whether they got there; a reference that did not is no
  reference, and the protocol's gates count the measurement as failed);
- ``spectral_radius`` of :math:`J = \partial F / \partial x` at the tight :math:`x^\star` by
  power iteration on :math:`v \mapsto J^\top v` (the spectrum of :math:`J`; torchdeq's
  ``power_method``): at one or above, :math:`x^\star` is not an attracting fixed point and
  the implicit gradient is not valid.

A Jacobian-free model's gradient is compared with the same tight implicit gradient: it
is inexact by design, and the cosine says by how much (``exact_gradient_claimed`` is
false for it, so that the leaderboard does not hold it to the implicit gradient's standard).

A step whose data gradient draws at random (ODER) has no exact fixed point to solve
tightly: its reference is the same step with the full data gradient
:math:`A^H(Ax - y)`, the expectation of the random one, i.e. the DEQ that ODER claims to
approximate; the spectral radius is that of the expected map's Jacobian.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch

from deqbench.blocks import DeepEquilibrium, ImplicitGradient, SolverSettings, full_gradient
from deqbench.blocks.data import draws_at_random

# 10x tighter than the shipped forward tolerance (1e-5; the backward one is 1e-4). 1e-6 is
# near float32's floor: on DEQ-ID sup weights at spectral radius 0.978 it took 135 forward
# and 201 backward iterations, its gradient 1.1% off a float64 solve to 1e-10 (that at
# 1e-5, 5.5%); Anderson reaches it with its small system in float64 (blocks/solvers.py).
# A capped reference is not used. The cap is well above the shipped ones (400).
TIGHT = SolverSettings(tol=1e-6, max_iter=1000, anderson=20)
POWER_ITERATIONS = 30


def measurable(model: torch.nn.Module) -> bool:
    return isinstance(model, DeepEquilibrium)


def snapshot(model: torch.nn.Module, generators: dict[str, torch.Generator]) -> dict:
    """Everything random a training step changes: the model's buffers (ODER's draw
    counts, the power-iteration vectors of weight normalisation) and the generators."""
    return {"buffers": {name: buffer.clone() for name, buffer in model.named_buffers()},
            "generators": {name: generator.get_state() for name, generator in generators.items()},
            "torch": torch.get_rng_state()}


def restore(state: dict, model: torch.nn.Module, generators: dict[str, torch.Generator]) -> None:
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(state["buffers"][name])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
    torch.set_rng_state(state["torch"])


class ExpectedGradient(torch.nn.Module):
    """:math:`A^H(Ax - y)` in the place of a random data gradient (same attribute, so the
    step's modules keep their order)."""

    def forward(self, x, y, physics):
        return full_gradient(x, y, physics)


@contextmanager
def solved_tightly(model: DeepEquilibrium):
    """The model with its forward solve run to :data:`TIGHT`, its gradient the implicit
    one solved to :data:`TIGHT`, and a random data gradient replaced by its expectation."""
    forward, gradient, data_gradient = model.forward_settings, model.gradient, model.step.data_gradient
    model.forward_settings, model.gradient = TIGHT, ImplicitGradient(TIGHT)
    if draws_at_random(data_gradient):
        model.step.data_gradient = ExpectedGradient()
    try:
        yield
    finally:
        model.forward_settings, model.gradient, model.step.data_gradient = forward, gradient, data_gradient


def spectral_radius(f: Callable[[torch.Tensor], torch.Tensor], x_star: torch.Tensor) -> float:
    """Power-iteration estimate of the spectral radius of the Jacobian of ``f`` at ``x_star``
    (the largest over the batch: the batch's Jacobian is block diagonal)."""
    x = x_star.detach().requires_grad_()
    with torch.enable_grad():
        fx = f(x)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype).to(x.device)
    v = v / v.norm()
    radius = torch.zeros(())
    for _ in range(POWER_ITERATIONS):
        w = torch.autograd.grad(fx, x, v, retain_graph=True)[0]
        radius = w.norm()
        v = w / radius.clamp_min(1e-30)
    return radius.item()


def parameter_gradient(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def measure(model: DeepEquilibrium, step_loss: Callable[[], torch.Tensor], before: dict,
            generators: Callable[[], dict], y: torch.Tensor, physics) -> dict[str, float]:
    """Fidelity of the gradient the step just computed (module docstring); ``before`` is the
    :func:`snapshot` taken before the step, ``step_loss`` replays the step's loss. The
    model's gradients and random state are left as the step left them."""
    configured, stats = {p: p.grad for p in model.parameters()}, dict(model.stats)
    after = snapshot(model, generators())
    restore(before, model, generators())
    claimed = isinstance(model.gradient, ImplicitGradient)
    with solved_tightly(model):
        model.zero_grad(set_to_none=True)
        step_loss().backward()
        exact = parameter_gradient(model)
        for p, grad in configured.items():
            p.grad = grad
        estimate = parameter_gradient(model)
        result = {
            "exact_gradient_claimed": claimed,
            "gradient_relative_error": ((estimate - exact).norm() / exact.norm().clamp_min(1e-30)).item(),
            "gradient_cosine": torch.nn.functional.cosine_similarity(estimate, exact, dim=0).item(),
            "tight_backward_capped": model.stats.get("backward_capped", 0.0),
        }
        with torch.no_grad():
            x_star = model(y, physics)
        with model.step.one_call():
            result["spectral_radius"] = spectral_radius(lambda x: model.step(x, y, physics), x_star)
        result["tight_forward_capped"] = model.stats.get("forward_capped", 0.0)
        result["reference_converged"] = not (result["tight_forward_capped"] or result["tight_backward_capped"])
    restore(after, model, generators())
    model.stats.clear()
    model.stats.update(stats)
    return result
