"""Gradient fidelity and spectral radius of DEQs (deqbench.fidelity), on maps with a known answer."""

import tempfile
from pathlib import Path

import pytest
import torch

from deqbench import fidelity
from deqbench.check import TINY_TRAINING, tiny_task
from deqbench.config import ROOT
from deqbench.methods import build_model, load_method
from deqbench.training import train


def test_spectral_radius_of_a_linear_map():
    """f(x) = M x with eigenvalues 0.9, -0.5, 0.1 (M similar to a diagonal): the radius is 0.9."""
    basis = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    matrix = basis @ torch.diag(torch.tensor([0.9, -0.5, 0.1], dtype=torch.float64)) @ torch.linalg.inv(basis)
    radius = fidelity.spectral_radius(lambda x: x @ matrix.T, torch.zeros(1, 3, dtype=torch.float64))
    assert radius == pytest.approx(0.9, rel=1e-4)


def trained(method: str, loss: str, every: int, task_name: str = "ct") -> tuple[dict, list[torch.Tensor]]:
    torch.manual_seed(0)
    task = tiny_task(task_name)
    model = build_model(load_method(ROOT / "methods" / method), task)
    with tempfile.TemporaryDirectory() as scratch:
        record = train(model, task, loss, {**TINY_TRAINING, "steps": 3, "fidelity_every": every}, 0,
                       torch.device("cpu"), Path(scratch) / "checkpoint.pt")
    return record, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(("method", "loss"), [("deq-id", "ei"), ("oder", "sup")])
def test_measuring_fidelity_does_not_change_training(method, loss):
    """The measurement replays the step and puts every generator and buffer back (EI's
    rotations and noise, ODER's draws, the weight normalisation's power iterations)."""
    plain, plain_weights = trained(method, loss, every=0)
    measured, measured_weights = trained(method, loss, every=1)
    assert "fidelity" not in plain and [m["step"] for m in measured["fidelity"]] == [0, 1, 2]
    assert measured["loss_history"] == plain["loss_history"]
    assert all(torch.equal(a, b) for a, b in zip(plain_weights, measured_weights, strict=True))


def worst(record: dict, key: str) -> float:
    return max(m[key] for m in record["fidelity"])


def test_jacobian_free_gradient_is_measured_but_claims_no_exactness():
    record, _ = trained("deq-jfb", "sup", every=2, task_name="mri")
    assert not any(m["exact_gradient_claimed"] for m in record["fidelity"])
    assert worst(record, "gradient_relative_error") > 0.01  # J taken as 0 is not the implicit gradient
    assert 0 < worst(record, "spectral_radius") < 1


def test_oder_is_measured_against_the_deq_it_approximates():
    """ODER's reference is the tight implicit gradient of the same step with the full data
    gradient: its forward solve converges (a tight solve of the random map would stall at
    the draws' noise floor and hit its cap), and ODER's biased gradient is not it."""
    record, _ = trained("oder", "sup", every=2)
    assert all(m["tight_forward_capped"] == 0 and m["tight_backward_capped"] == 0 for m in record["fidelity"])
    assert 0 < worst(record, "spectral_radius") < 1
    assert worst(record, "gradient_relative_error") > 1e-3
