r"""Building blocks for method authors: what a DEQ, unrolled or ODER-like method is made of.

A method's ``model.py`` writes its iteration as a :class:`Step` (its equation, in
``forward``) from these parts and wraps it in a model:

- denoisers: :class:`LipschitzDenoiser` (a DnCNN with a controlled Lipschitz constant);
- data consistency: :func:`full_gradient` (:math:`A^H(Ax - y)`), :class:`MeasurementGroups`
  (the gradient over stratified groups of the measurements, for subsampled estimators)
  and :class:`SeededDraws` (reproducible random draws, reseeded at every model call);
- models: :class:`DeepEquilibrium` (the fixed point of the step, with a gradient
  estimator: :class:`ImplicitGradient` or :class:`JacobianFreeGradient`, or one of the
  method's own with the same ``attach``) and :class:`Unrolled` (K steps);
- solvers: :class:`SolverSettings`, :func:`fixed_point` (plain iteration, Anderson or
  Nesterov acceleration), and :func:`red_contraction_bound` for RED steps.

The shipped ``methods/deq-id``, ``deq-jfb``, ``oder``, ``unrolled`` and ``de-prox`` are
written this way; docs/extending.md, "Iterative methods from building blocks", has a worked example.
"""

from deqbench.blocks.data import MeasurementGroups, SeededDraws, full_gradient
from deqbench.blocks.denoiser import LipschitzDenoiser
from deqbench.blocks.models import DeepEquilibrium, Step, Unrolled, red_contraction_bound
from deqbench.blocks.solvers import ImplicitGradient, JacobianFreeGradient, SolverSettings, fixed_point

__all__ = ["DeepEquilibrium", "ImplicitGradient", "JacobianFreeGradient", "LipschitzDenoiser",
           "MeasurementGroups", "SeededDraws", "SolverSettings", "Step", "Unrolled", "fixed_point",
           "full_gradient", "red_contraction_bound"]
