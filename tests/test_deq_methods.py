"""The DEQ and unrolled methods: gradients, ODER's stochastic gradient, contractivity checks."""

import itertools

import pytest
import torch
from deepinv.physics import MRI, MultiCoilMRI, Tomography

from deqbench.blocks import (DeepEquilibrium, ImplicitGradient, JacobianFreeGradient, LipschitzDenoiser,
                             SolverSettings, Unrolled, full_gradient, red_contraction_bound)
from deqbench.blocks.denoiser import INITIAL_RESIDUAL_SCALE, ConvOperatorNorm
from deqbench.check import tiny_task
from deqbench.config import ROOT
from deqbench.methods import import_model
from deqbench.tasks import Task, build_physics, simulated_coil_maps
from deqbench.training import train

DEQ_ID, ODER = import_model(ROOT / "methods" / "deq-id"), import_model(ROOT / "methods" / "oder")

SIZE = 16


def relative_error(estimate, truth):
    return ((estimate - truth).norm() / truth.norm()).item()


def small_step(lipschitz=0.5, step=0.5, channels=2):
    """A float64 step in eval mode (fixed weight normalisation), regularization 1."""
    torch.manual_seed(0)
    denoiser = LipschitzDenoiser(channels, depth=3, width=8, lipschitz=lipschitz, shrinkage=0.0, image_size=SIZE)
    with torch.no_grad():  # undo the small initial scale, so that N is far from zero
        denoiser.dncnn.out_conv.parametrizations.weight.original.div_(INITIAL_RESIDUAL_SCALE)
    return DEQ_ID.REDStep(denoiser, full_gradient, step=step, regularization=1.0).double().eval()


def mri(columns: torch.Tensor | None = None, coils: int = 1) -> MRI | MultiCoilMRI:
    mask = torch.zeros(1, SIZE, SIZE)
    mask[..., columns if columns is not None else slice(None)] = 1
    if coils == 1:
        return MRI(mask=mask, img_size=(SIZE, SIZE))
    maps = simulated_coil_maps(coils, SIZE, seed=0).to(torch.complex128)
    return MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(SIZE, SIZE))


def tomography(angles: int) -> Tomography:
    return Tomography(angles=angles, img_width=SIZE, normalize=False, parallel_computation=False,
                      dtype=torch.float64)


def measurements(physics, channels=2, seed=0):
    x = torch.rand(2, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return physics.A(x)


def parameter_gradients(model, y, physics, target):
    model.zero_grad()
    ((model(y, physics) - target) ** 2).sum().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_implicit_gradient_matches_long_unrolled_backprop_and_jfb_does_not():
    """Fully sampled MRI (A unitary): Lip(F) <= 1 - step + step * regularization * lipschitz = 0.75."""
    physics = mri()
    step = small_step()
    assert red_contraction_bound(step.step, step.regularization, step.denoiser, 1.0) == pytest.approx(0.75)
    y = measurements(physics)
    target = torch.rand(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tight = SolverSettings(tol=1e-12, max_iter=300, anderson=5)
    reference = parameter_gradients(Unrolled(step, iterations=80), y, physics, target)
    implicit = DeepEquilibrium(step, tight, ImplicitGradient(tight))
    gradient = parameter_gradients(implicit, y, physics, target)
    jfb = parameter_gradients(DeepEquilibrium(step, tight, JacobianFreeGradient()), y, physics, target)
    assert implicit.stats["backward_capped"] == 0.0
    assert relative_error(gradient, reference) < 1e-3
    assert relative_error(jfb, reference) > 0.05


def test_unrolled_backprop_matches_finite_differences():
    """Backprop through all K steps of a tiny undersampled CT problem equals the central
    difference of the loss along a random parameter direction (float64)."""
    physics = tomography(angles=6)
    squared_norm = physics.compute_sqnorm(torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64), verbose=False).item()
    step = small_step(lipschitz=1.0, step=1 / squared_norm, channels=1)
    model = Unrolled(step, iterations=4)
    y = measurements(physics, channels=1)
    target = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss():
        return ((model(y, physics) - target) ** 2).sum()

    gradient = parameter_gradients(model, y, physics, target)
    direction = torch.randn(gradient.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    parameters = list(model.parameters())
    flat = torch.nn.utils.parameters_to_vector(parameters).detach()
    eps = 1e-6
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(flat + eps * direction, parameters)
        upper = loss()
        torch.nn.utils.vector_to_parameters(flat - eps * direction, parameters)
        lower = loss()
    finite_difference = (upper - lower) / (2 * eps)
    assert (gradient @ direction).item() == pytest.approx(finite_difference.item(), rel=1e-5)


def test_conv_operator_norm_bounds_the_convolution_unlike_reshaped_spectral_norm():
    """The operator norm of the normalised convolution (by a fresh, long power iteration)
    is the bound; torch's spectral_norm leaves it well above."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
    normalised = ConvOperatorNorm(conv.weight.detach(), size=SIZE, bound=1.0).eval()(conv.weight.detach())
    reshaped = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Conv2d(8, 8, 3, padding=1, bias=False))
    with torch.no_grad():
        reshaped.weight.data  # noqa: B018
        for _ in range(50):
            reshaped(torch.zeros(1, 8, SIZE, SIZE))  # converge its power iteration
    reshaped.eval()

    def operator_norm(weight):
        probe = ConvOperatorNorm(weight.detach(), size=SIZE, bound=1.0)
        for _ in range(200):
            probe.power_step(weight.detach())
        return torch.nn.functional.conv2d(probe.vector, weight.detach(), padding=1).norm().item()

    assert operator_norm(normalised) == pytest.approx(1.0, rel=1e-2)  # power iteration estimate
    assert operator_norm(reshaped.weight) > 1.2


COLUMNS = torch.tensor([0, 1, 2, 5, 7, 8, 9, 11, 13, 15])  # the centre is 7-9


@pytest.mark.parametrize("kind", ["ct", "mri", "multicoil"])
def test_oder_gradient_is_unbiased(kind):
    """The groups partition the measurements, the mean over all equally likely draws of
    the rescaled subset gradient is the full gradient, and so is the mean of many random
    draws (within four Monte Carlo standard errors)."""
    if kind == "ct":
        physics = tomography(angles=12)
        channels = 1
    else:
        physics, channels = mri(columns=COLUMNS, coils=9 if kind == "multicoil" else 1), 2
    y = measurements(physics, channels)
    x = torch.rand(2, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    oder = ODER.StochasticGradient(block_count=3, fraction=0.5, seed=0)
    full = full_gradient(x, y, physics)
    groups = oder.groups.count(physics)
    assert groups > 2
    assert relative_error(oder.groups.gradient(x, y, physics, list(range(groups)), scale=1.0), full) < 1e-10
    drawn = max(1, round(0.5 * groups))
    subsets = list(itertools.combinations(range(groups), drawn))
    average = sum(oder.groups.gradient(x, y, physics, list(s), scale=groups / drawn) for s in subsets) / len(subsets)
    assert relative_error(average, full) < 1e-10
    oder.draws.new_call()
    draws = torch.stack([oder(x, y, physics) for _ in range(1000)])
    standard_error = (draws.var(dim=0).sum() / len(draws)).sqrt() / full.norm()
    assert relative_error(draws[0], full) > 0.1  # one draw is far from the full gradient
    assert relative_error(draws.mean(dim=0), full) < 4 * standard_error < 0.15  # a 50% bias would show


def test_oder_draw_computes_only_the_drawn_coils(monkeypatch):
    """Multi-coil MRI, 9 coils in 3 groups of 3 (coils g, g + 3, g + 6), 2 groups drawn:
    the forward and adjoint FFTs of a draw transform 6 coil images, the full gradient 9."""
    physics = mri(columns=COLUMNS, coils=9)
    y = measurements(physics)
    x = torch.rand(1, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    transformed = {"fft": [], "ifft": []}
    for name in transformed:
        original = getattr(MultiCoilMRI, name)

        def counting(images, *args, name=name, original=original, **kwargs):
            transformed[name].append(images.shape[1])  # (B, coils, H, W)
            return original(images, *args, **kwargs)

        monkeypatch.setattr(MultiCoilMRI, name, staticmethod(counting))
    full_gradient(x, y[:1], physics)
    assert transformed == {"fft": [9], "ifft": [9]}
    oder = ODER.StochasticGradient(block_count=3, fraction=0.5, seed=0)
    oder.draws.new_call()
    oder(x, y[:1], physics)
    assert transformed == {"fft": [9, 3, 3], "ifft": [9, 3, 3]}


def test_oder_draws_repeat_from_seed_and_call_count():
    physics = tomography(angles=12)
    y = measurements(physics, channels=1)
    x = physics.A_adjoint(measurements(physics, channels=1, seed=1))

    def calls(oder, count):
        draws = []
        for _ in range(count):
            oder.draws.new_call()
            draws.append(oder(x, y, physics))
        return draws

    def same(first, second):
        return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))

    reference = calls(ODER.StochasticGradient(3, 0.5, seed=0), 4)
    assert same(reference, calls(ODER.StochasticGradient(3, 0.5, seed=0), 4))
    assert not same(reference, calls(ODER.StochasticGradient(3, 0.5, seed=1), 4))
    interrupted = ODER.StochasticGradient(3, 0.5, seed=0)
    calls(interrupted, 1)
    resumed = ODER.StochasticGradient(3, 0.5, seed=0)
    resumed.load_state_dict(interrupted.state_dict())  # the call count is saved with the weights
    assert same(reference[1:], calls(resumed, 3))


TRAINING = {"steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 2, "ei_weight": 1.0,
            "ei_rotation_multiples": 1.0}
NON_CONTRACTIVE = {
    # the identity denoiser (no RED term) with step 1: F = I on the null space of the
    # undersampled MRI operator; the forward solve converges, the backward cannot
    "null space": ({"step": 1.0, "regularization": 0.0,
                    "denoiser": {"depth": 3, "width": 8, "lipschitz": 1.0, "shrinkage": 0.0}}, "backward"),
    # a step of 3 / ||A||^2: the data-consistency step alone has eigenvalue -2, the forward
    # iteration oscillates and grows
    "step too large": ({"step": 3.0, "regularization": 1.0,
                        "denoiser": {"depth": 3, "width": 8, "lipschitz": 1.0, "shrinkage": 0.0}}, "forward"),
}


@pytest.mark.parametrize("name", NON_CONTRACTIVE)
def test_non_contractive_configuration_is_detected_and_reported(name, tmp_path):
    hparams, failing_solve = NON_CONTRACTIVE[name]
    settings = {"tol": 1e-4, "max_iter": 15, "anderson": 0}
    task = tiny_task("mri")
    torch.manual_seed(0)
    model = DEQ_ID.build({**hparams, "forward": settings, "backward": settings}, task)
    with pytest.warns(UserWarning, match="hit a fixed-point iteration cap"):
        record = train(model, task, "sup", TRAINING, 0, torch.device("cpu"), tmp_path / "checkpoint.pt")
    assert record["fixed_point_warning"] == 2
    assert record[f"fp_{failing_solve}_capped"] == 1.0
    assert record[f"fp_{failing_solve}_residual_max"] > 1e-2


def test_guaranteed_contraction_trains_without_warnings(tmp_path):
    """Fully sampled MRI, lipschitz 0.5, step 0.5: Lip(F) <= 0.75, so no solve may hit its cap."""
    config = {"physics": "mri", "image_size": SIZE, "noise_sigma": 0.01}
    physics = build_physics(config, mask=torch.ones(1, SIZE, SIZE))
    x = torch.rand(4, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    task = Task("mri", config, physics, {"train": {"x": x, "y": physics(x)}})
    torch.manual_seed(0)
    settings = {"tol": 1e-4, "max_iter": 50, "anderson": 5}
    model = DEQ_ID.build({"step": 0.5, "regularization": 1.0, "forward": settings,
                               "backward": settings, "denoiser": {"depth": 3, "width": 8, "lipschitz": 0.5, "shrinkage": 0.0}}, task)
    assert red_contraction_bound(0.5, 1.0, model.step.denoiser, smallest_singular_value=1.0) == pytest.approx(0.75)
    record = train(model, task, "sup", TRAINING, 0, torch.device("cpu"), tmp_path / "checkpoint.pt")
    assert record["fixed_point_warning"] == 0
    assert record["fp_forward_residual_max"] <= 1e-4 and record["fp_backward_residual_max"] <= 1e-4
