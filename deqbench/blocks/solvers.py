r"""Fixed-point solvers and the backward pass of a deep equilibrium model (DEQ).

A DEQ outputs a fixed point :math:`x^\star = F_\theta(x^\star)`. The forward pass
finds it without building a graph, by plain iteration :math:`x_{k+1} = F(x_k)`, by
Nesterov's acceleration (below), or by Anderson acceleration (Walker and Ni 2011), which
extrapolates from the last ``m`` iterates by solving, per sample,

.. math::  \min_{\alpha,\ \sum_i \alpha_i = 1} \Big\|\sum_{i} \alpha_i \big(F(x_{k-i}) - x_{k-i}\big)\Big\|^2 + \lambda \|\alpha\|^2,
           \qquad x_{k+1} = \sum_i \alpha_i F(x_{k-i}),

with :math:`\lambda` relative to the mean squared residual, so that it does not depend on
the scale of the iterates (the backward iterates are gradients, often tiny). This small
system is formed and solved in float64: the residuals in the history span decades, and in
float32 the Gram matrix loses the newest, smallest ones, so that near spectral radius 0.98
Anderson stalls at a relative residual of about 1e-3. Measured on DEQ-ID ``sup`` weights
after 315 of 700 cosine steps, 6 training batches, cap 600, backward solves stopped at the
cap (iterations of the others): history 5, 4 in float32, 5 in float64; history 10, 5
(float32), 0 (float64: 117-150); history 20, 3 (float32: 158-201), 0 (float64: 93-134).

A long history can still stall: near spectral radius 0.98 (MRI DEQ-ID ``ei``, one image of
a batch in each of two replayed training steps) history 10 or 20 stalled at a relative
residual of 2-4e-3, where history 5 converged in 68 and 49 iterations. So Anderson whose
batch-max residual has not improved on its best for ``stall_patience`` (20) iterations
restarts from the initial guess with history ``stall_history`` (5) for the rest of its
``max_iter``: both replayed stalls then converged in 116 and 98 iterations in all, and
on CT DEQ-ID ``sup`` weights that converge (6 batches) the rule never fired.
``<prefix>_restarts`` in :meth:`Solution.stats` counts it.

Nesterov's acceleration, as ODER's public code reconstructs (wustl-cig/ODER,
``iterAlgs.py``), from :math:`s_0 = x_0`, :math:`t_0 = 1`:

.. math::  x_{k+1} = F(s_k), \quad t_{k+1} = \tfrac12\big(1 + \sqrt{1 + 4t_k^2}\big), \quad
           s_{k+1} = x_{k+1} + \frac{t_k - 1}{t_{k+1}}(x_{k+1} - x_k);

its residual is the relative change :math:`\|x_{k+1} - x_k\| / \|x_{k+1}\|`. It accelerates
a gradient step, a map whose Jacobian has its spectrum in [0, 1): on a linear map with
spectrum [0, 0.99] it took 649 iterations to a change of 1e-8 against plain iteration's 1376
(its error then 1e-4, the change dips below tolerance ahead of it); with spectrum
[-0.9, 0.9] it diverged.

All stop once the relative residual :math:`\|F(x) - x\| / \|F(x)\|` (Nesterov's: its
relative change) of every sample is below ``tol``, or after ``max_iter`` evaluations of
:math:`F` (capped, unless ``tol`` is 0: then ``max_iter`` is a fixed budget, as for a
stochastic map whose residual stalls at a noise floor, and running it is the rule, not a
failure).

Gradients (the output is one more step :math:`\hat x = F_\theta(x^\star)`, evaluated
with a graph):

- implicit differentiation (Bai et al. 2019, Gilton et al. 2021): by the implicit
  function theorem, :math:`\frac{d x^\star}{d\theta}^\top g = \frac{\partial F}{\partial
  \theta}^\top v` where :math:`v = J^\top v + g` and :math:`J = \partial F / \partial x`
  at :math:`x^\star`. A backward hook on :math:`\hat x` replaces the incoming gradient
  :math:`g` by :math:`v`, solved with the same solvers using autograd vector-Jacobian
  products of the single evaluation :math:`\hat x = F(x^\star)` (the modular scheme of
  Figure 2 of Mehta et al. 2025, which evaluates :math:`F` twice);
- Jacobian-free backpropagation (Fung et al. 2022): :math:`J` is taken as 0, so the
  gradient is that of the last step alone.

This small core is used instead of deepinv's ``DEQConfig`` because it stops both
solves at their own tolerance and reports, per call, the iteration counts, the
relative residuals and whether a solve hit its cap: the implicit gradient is only
valid when :math:`F` is contractive near :math:`x^\star`, and a backward solve that does
not converge is how a non-contractive map shows. It also evaluates :math:`F` once at
the fixed point instead of twice, and scales Anderson's regularisation to the
residuals: ``DEQConfig``'s absolute one swamps the tiny backward iterates, so at equal
iterations its implicit gradient was 58% off the converged one against 2e-6 here
(``benchmarks/deq_training.py``, which also measures time and memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Map = Callable[[torch.Tensor], torch.Tensor]

ANDERSON_REGULARISATION = 1e-10  # relative; float64 (module docstring)


@dataclass(frozen=True)
class SolverSettings:
    """``tol``: relative residual to reach (0: run ``max_iter`` evaluations, a fixed
    budget); ``max_iter``: cap on evaluations of the map; ``anderson``: history size of
    Anderson acceleration, 0 for plain iteration; ``nesterov``: Nesterov's acceleration
    instead (``anderson`` must be 0); ``stall_patience``: iterations without progress after
    which Anderson restarts with history ``stall_history`` (0: never; module docstring)."""

    tol: float = 1e-3
    max_iter: int = 30
    anderson: int = 5
    nesterov: bool = False
    stall_patience: int = 20
    stall_history: int = 5

    def __post_init__(self):
        if self.nesterov and self.anderson > 0:
            raise ValueError("Nesterov's and Anderson acceleration are exclusive: set anderson to 0")


@dataclass
class Solution:
    x: torch.Tensor
    iterations: int
    residual: torch.Tensor  # (batch,) relative residual of the last iterate (Nesterov: relative change)
    converged: bool  # stopped by its rule: tolerance reached, or the fixed budget of tol 0 run
    restarts: int = 0  # Anderson's restarts after a stall

    def stats(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_iterations": float(self.iterations),
            f"{prefix}_residual_mean": self.residual.mean().item(),
            f"{prefix}_residual_max": self.residual.max().item(),
            f"{prefix}_capped": float(not self.converged),
            f"{prefix}_restarts": float(self.restarts),
        }


def hit_cap(stats: dict[str, float]) -> bool:
    """Whether any solve reported in ``stats`` stopped at its cap above tolerance."""
    return any(value > 0 for key, value in stats.items() if key.endswith("_capped"))


def relative_residual(fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:math:`\\|F(x) - x\\| / \\|F(x)\\|` per sample, infinite where :math:`\\|F(x)\\|` is: a
    diverging iteration whose norm overflows first would read 0 (ODER's Nesterov iteration on
    the default MRI task did, its iterate's norm past 1.8e19, whose square overflows float32,
    and stopped as converged)."""
    diff, norm = (fx - x).flatten(1).norm(dim=1), fx.flatten(1).norm(dim=1)
    return torch.where(norm.isfinite(), diff / norm.clamp_min(1e-12), torch.inf)


def picard(f: Map, x0: torch.Tensor, settings: SolverSettings) -> Solution:
    """Plain fixed-point iteration :math:`x_{k+1} = F(x_k)` from ``x0``."""
    x = x0
    for k in range(1, settings.max_iter + 1):
        fx = f(x)
        residual = relative_residual(fx, x)
        x = fx
        if residual.max() <= settings.tol:
            return Solution(x, k, residual, True)
    return Solution(x, settings.max_iter, residual, settings.tol <= 0)


def anderson(f: Map, x0: torch.Tensor, settings: SolverSettings) -> Solution:
    """Anderson acceleration with history ``settings.anderson`` (mixing parameter 1),
    restarted from ``x0`` with history ``settings.stall_history`` once stalled (module
    docstring). A fixed budget (tol 0) never restarts: its residual may rest at a floor."""
    armed = settings.tol > 0 and settings.anderson > settings.stall_history
    first = anderson_run(f, x0, settings.anderson, settings.tol, settings.max_iter,
                         settings.stall_patience if armed else 0)
    if first.converged or first.iterations == settings.max_iter:
        return first
    rest = anderson_run(f, x0, settings.stall_history, settings.tol, settings.max_iter - first.iterations, 0)
    return Solution(rest.x, first.iterations + rest.iterations, rest.residual, rest.converged, restarts=1)


def anderson_run(f: Map, x0: torch.Tensor, m: int, tol: float, max_iter: int, patience: int) -> Solution:
    """Anderson with history ``m``; stops early, unconverged, once its batch-max residual has
    not improved on its best for ``patience`` iterations (0: never)."""
    batch = x0.shape[0]
    xs = x0.new_zeros(batch, m, x0[0].numel())
    fs = torch.zeros_like(xs)
    xs[:, 0], fs[:, 0] = x0.flatten(1), f(x0).flatten(1)
    residual = relative_residual(fs[:, 0], xs[:, 0])
    if residual.max() <= tol or max_iter <= 1:
        return Solution(fs[:, 0].view_as(x0), 1, residual, bool(residual.max() <= tol))
    best, stale = residual.max(), 0
    # bordered normal equations [[0, 1^T], [1, G G^T + lambda I]] [nu; alpha] = [1; 0], in float64
    system = x0.new_zeros(batch, m + 1, m + 1, dtype=torch.float64)
    system[:, 0, 1:] = system[:, 1:, 0] = 1
    rhs = torch.zeros_like(system[:, :, :1])
    rhs[:, 0] = 1
    newest = fs[:, 0]
    for k in range(1, max_iter):
        n = min(k, m)
        g = (fs[:, :n] - xs[:, :n]).double()
        gram = g @ g.transpose(1, 2)
        scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None]
        system[:, 1:n + 1, 1:n + 1] = gram + ANDERSON_REGULARISATION * scale * torch.eye(
            n, dtype=system.dtype, device=x0.device)
        alpha = torch.linalg.solve(system[:, :n + 1, :n + 1], rhs[:, :n + 1])[:, 1:n + 1, 0].to(x0.dtype)
        slot = k % m
        xs[:, slot] = (alpha[:, None] @ fs[:, :n])[:, 0]
        fs[:, slot] = f(xs[:, slot].view_as(x0)).flatten(1)
        residual = relative_residual(fs[:, slot], xs[:, slot])
        newest = fs[:, slot]
        worst = residual.max()
        if worst <= tol:
            return Solution(newest.view_as(x0), k + 1, residual, True)
        best, stale = (worst, 0) if worst < best else (best, stale + 1)
        if 0 < patience == stale and k + 1 < max_iter:
            return Solution(newest.view_as(x0), k + 1, residual, False)
    return Solution(newest.view_as(x0), max_iter, residual, tol <= 0)


def nesterov(f: Map, x0: torch.Tensor, settings: SolverSettings) -> Solution:
    """Nesterov's acceleration of :math:`x_{k+1} = F(x_k)` from ``x0`` (module docstring),
    stopped once the relative change of every sample is below ``tol``."""
    x = s = x0
    t = 1.0
    for k in range(1, settings.max_iter + 1):
        x_next = f(s)
        change = relative_residual(x_next, x)
        t_next = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        s = x_next + ((t - 1) / t_next) * (x_next - x)
        x, t = x_next, t_next
        if change.max() <= settings.tol:
            return Solution(x, k, change, True)
    return Solution(x, settings.max_iter, change, settings.tol <= 0)


def fixed_point(f: Map, x0: torch.Tensor, settings: SolverSettings) -> Solution:
    """Solve :math:`x = F(x)` from the initial guess (warm start) ``x0``."""
    if settings.nesterov:
        return nesterov(f, x0, settings)
    return anderson(f, x0, settings) if settings.anderson > 0 else picard(f, x0, settings)


class ImplicitGradient:
    """Implicit differentiation: the incoming gradient :math:`g` of :math:`\\hat x` is
    replaced by the solution of :math:`v = J^\\top v + g` at :math:`x^\\star`, solved with
    ``settings`` (module docstring)."""

    differentiates_fixed_point = True  # the backward pass needs the graph through x*

    def __init__(self, settings: SolverSettings):
        self.settings = settings

    def attach(self, fx: torch.Tensor, x_star: torch.Tensor, stats: dict[str, float]) -> torch.Tensor:
        output = fx.view_as(fx)  # the hook sits on this view, the VJPs start from fx

        def implicit_gradient(grad: torch.Tensor) -> torch.Tensor:
            def adjoint_map(v: torch.Tensor) -> torch.Tensor:
                return torch.autograd.grad(fx, x_star, v, retain_graph=True)[0] + grad

            with torch.enable_grad():
                solved = fixed_point(adjoint_map, grad, self.settings)
            stats.update(solved.stats("backward"))
            return solved.x

        output.register_hook(implicit_gradient)
        return output


class JacobianFreeGradient:
    """Jacobian-free backpropagation: :math:`J` taken as 0, the gradient of the last step
    :math:`\\hat x = F(x^\\star)` alone (Fung et al. 2022)."""

    differentiates_fixed_point = False

    def attach(self, fx: torch.Tensor, x_star: torch.Tensor, stats: dict[str, float]) -> torch.Tensor:
        return fx


Gradient = ImplicitGradient | JacobianFreeGradient


def equilibrium(f: Map, x0: torch.Tensor, forward: SolverSettings, gradient: Gradient,
                stats: dict[str, float]) -> torch.Tensor:
    """The fixed point of ``f`` from ``x0``, differentiable in the parameters of ``f``.

    The forward solve runs without a graph; the output is one more step
    :math:`\\hat x = F(x^\\star)` with a graph, whose backward pass ``gradient`` defines
    (an :class:`ImplicitGradient`, a :class:`JacobianFreeGradient`, or any object with
    the same ``attach``). ``stats`` is cleared and filled with the forward solve's
    statistics (``forward_*``), then, when an implicit backward runs, the backward
    solve's (``backward_*``).
    """
    stats.clear()
    with torch.no_grad():
        solution = fixed_point(f, x0, forward)
    stats.update(solution.stats("forward"))
    if not torch.is_grad_enabled():
        return solution.x
    x_star = solution.x.detach().requires_grad_(gradient.differentiates_fixed_point)
    return gradient.attach(f(x_star), x_star, stats)
