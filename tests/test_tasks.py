"""Forward operators: adjointness, simulation consistency and determinism."""

import numpy as np
import pytest
import torch

from deqbench.config import ConfigError
from deqbench.datasets import ellipse_phantom, split_rng
from deqbench.tasks import (OPERATOR_NORM, MatrixTomography, build_physics, draw_mri_mask, initial_reconstruction,
                            load_task, simulate, simulated_coil_maps, tomography)

CT = {"physics": "tomography", "image_size": 32, "angles": 12, "noise_sigma": 0.01}
MRI = {"physics": "mri", "image_size": 32, "acceleration": 4, "center_fraction": 0.08, "noise_sigma": 0.01}
MULTICOIL = {**MRI, "coils": 4}


def physics_for(cfg):
    mask = draw_mri_mask(cfg, seed=0) if cfg["physics"] == "mri" else None
    maps = simulated_coil_maps(cfg["coils"], cfg["image_size"], seed=0) if "coils" in cfg else None
    return build_physics(cfg, mask=mask, coil_maps=maps)


def power_iteration_norm(physics, channels, iterations=50):
    """||A|| from power iteration on A^H A."""
    x = torch.randn(1, channels, 32, 32, generator=torch.Generator().manual_seed(0))
    for _ in range(iterations):
        x = physics.A_adjoint(physics.A(x))
        x = x / x.norm()
    return physics.A(x).norm().item()


@pytest.mark.parametrize("cfg", [CT, MRI, MULTICOIL], ids=["ct", "mri", "multicoil"])
def test_adjoint_matches_forward(cfg):
    """<A u, v> = <u, A^T v> for random u, v: the operator and its adjoint agree."""
    physics = physics_for(cfg)
    generator = torch.Generator().manual_seed(1)
    channels = 2 if cfg["physics"] == "mri" else 1
    u = torch.randn(2, channels, 32, 32, generator=generator, dtype=torch.float64).float()
    v = torch.randn(physics.A(u).shape, generator=generator)
    lhs = (physics.A(u) * v).sum()
    rhs = (u * physics.A_adjoint(v)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-4), (lhs.item(), rhs.item())


def test_ct_operator_is_normalised():
    assert power_iteration_norm(physics_for(CT), channels=1) == pytest.approx(1.0, rel=0.02)


def test_multicoil_operator_norm_is_at_most_one():
    """sum_c |S_c|^2 = 1 at every pixel: ||A|| <= OPERATOR_NORM = 1, and A^H A = I when
    fully sampled."""
    physics = physics_for(MULTICOIL)
    assert physics.coil_maps.shape == (1, 4, 32, 32)
    assert torch.allclose(physics.coil_maps.abs().pow(2).sum(dim=1), torch.ones(1, 32, 32), atol=1e-5)
    assert 0.9 < power_iteration_norm(physics, channels=2) <= OPERATOR_NORM + 1e-4
    full = build_physics(MULTICOIL, mask=torch.ones(1, 32, 32), coil_maps=simulated_coil_maps(4, 32, seed=0))
    x = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(full.A_adjoint(full.A(x)), x, atol=1e-5)


def test_coil_maps_are_deterministic_in_the_seed():
    first = simulated_coil_maps(4, 32, seed=3)
    assert first.shape == (4, 32, 32) and first.is_complex()
    assert torch.equal(first, simulated_coil_maps(4, 32, seed=3))
    assert not torch.allclose(first, simulated_coil_maps(4, 32, seed=4))
    assert (first[:, 1:] - first[:, :-1]).abs().max() < 0.2  # smooth: small steps between neighbours


def test_multicoil_simulation_keeps_its_coil_maps_and_single_coil_is_unchanged():
    images = {"test": torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(0))}
    data = simulate(MULTICOIL, images, seed=3)
    assert torch.equal(data["coil_maps"], simulated_coil_maps(4, 32, seed=3))
    assert data["splits"]["test"]["y"].shape == (2, 2, 4, 32, 32)  # noise on every coil
    task = load_task("mri", MULTICOIL, data, noise_seed=3)
    assert initial_reconstruction(data["splits"]["test"]["y"], task.physics).shape == (2, 2, 32, 32)
    with pytest.raises(ConfigError, match="coil maps"):
        build_physics(MULTICOIL, mask=data["mask"])
    single, one_coil = simulate(MRI, images, seed=3), simulate({**MRI, "coils": 1}, images, seed=3)
    assert "coil_maps" not in single
    assert torch.equal(single["splits"]["test"]["y"], one_coil["splits"]["test"]["y"])


def test_ct_operator_does_not_depend_on_the_global_rng():
    torch.manual_seed(1)
    first = physics_for(CT)
    state = torch.get_rng_state()
    torch.manual_seed(2)
    second = physics_for(CT)
    assert torch.equal(first.operator_norm, second.operator_norm)
    torch.manual_seed(1)
    physics_for(CT)
    assert torch.equal(torch.get_rng_state(), state)


def test_fine_grid_simulation_is_close_to_but_not_the_coarse_operator():
    """Measurements from the 2x finer grid agree with A x to a few percent, not exactly."""
    rng = split_rng(0, "test")
    fine = torch.from_numpy(np.stack([ellipse_phantom(rng, 64) for _ in range(3)]))
    clean = {**CT, "noise_sigma": 0.0}
    out = simulate(clean, {"test": fine}, seed=0)["splits"]["test"]
    coarse = build_physics(clean).A(out["x"])
    relative = ((out["y"] - coarse).norm() / coarse.norm()).item()
    assert 1e-3 < relative < 0.08


def test_simulation_is_deterministic_and_noise_seeded():
    images = {"test": torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(0))}
    first = simulate(CT, images, seed=3)["splits"]["test"]["y"]
    again = simulate(CT, images, seed=3)["splits"]["test"]["y"]
    other = simulate(CT, images, seed=4)["splits"]["test"]["y"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_mri_noise_falls_on_sampled_k_space_only():
    """deepinv's own MRI noise model: the measurement is exactly zero where the mask is."""
    cfg = {"physics": "mri", "image_size": 16, "acceleration": 4, "center_fraction": 0.08, "noise_sigma": 0.1}
    data = simulate(cfg, {"test": torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))}, seed=0)
    y = data["splits"]["test"]["y"]
    sampled = data["mask"].expand_as(y) > 0
    assert not sampled.all() and (y[~sampled] == 0).all() and (y[sampled] != 0).all()


def test_mri_zero_filled_keeps_measured_frequencies():
    physics = physics_for(MRI)
    x = torch.rand(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    y = physics.A(x)
    assert torch.allclose(physics.A(initial_reconstruction(y, physics)), y, atol=1e-5)
    assert 0.2 < physics.mask.float().mean().item() < 0.35


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_the_ct_matrix_is_deepinvs_operator():
    """The sparse CT operator equals deepinv's Tomography to 1e-6 relative: forward, adjoint
    (deepinv's is autograd of A), the gradient through A, FBP, and a subset of views
    (ODER's groups); a task's cached matrix gives the same operator."""
    fast, reference = build_physics(CT), tomography(CT["angles"], CT["image_size"])
    assert isinstance(fast, MatrixTomography)
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, 32, 32, generator=generator).requires_grad_()
    y = torch.randn(reference.A(x).shape, generator=generator)
    assert relative(fast.A(x), reference.A(x)) < 1e-6
    assert relative(fast.A_adjoint(y), reference.A_adjoint(y)) < 1e-6
    assert relative(torch.autograd.grad((fast.A(x) * y).sum(), x)[0], reference.A_adjoint(y)) < 1e-6
    assert relative(initial_reconstruction(y, fast), initial_reconstruction(y, reference)) < 1e-6
    views = torch.arange(1, CT["angles"], 4)
    assert relative(fast.angle_subset(views).A(x), reference.A(x)[..., views]) < 1e-6
    cached = build_physics(CT, operator=fast.matrix)
    assert torch.equal(cached.A(x), fast.A(x))
