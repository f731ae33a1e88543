"""Denoiser training for PnP and RED: it denoises, it is seeded, it fits the denoiser alone."""

import numpy as np
import pytest
import torch

from deqbench.config import ROOT, ConfigError
from deqbench.datasets import ellipse_phantom, split_rng
from deqbench.denoisers import train_denoiser
from deqbench.leaderboard import unsupported
from deqbench.methods import MethodError, build_model, load_method
from deqbench.tasks import load_task, simulate

CPU = torch.device("cpu")
SETTINGS = {"steps": 40, "batch_size": 4, "lr": 1e-3, "denoiser_sigma": 0.05}


def ct_task(noise_sigma=0.01, sizes=(("train", 16), ("val", 4), ("test", 2))):
    """A 32 x 32, 12-view CT task on ellipse phantoms."""
    cfg = {"physics": "tomography", "image_size": 32, "angles": 12, "noise_sigma": noise_sigma}
    images = {split: torch.from_numpy(np.stack([ellipse_phantom(split_rng(0, split), 32) for _ in range(n)])).float()
              for split, n in sizes}
    return load_task("ct", cfg, simulate(cfg, images, seed=0), noise_seed=0)


def built(name, task):
    method = load_method(ROOT / "methods" / name)
    torch.manual_seed(0)
    return build_model(method, task)


@pytest.mark.parametrize("name", ["pnp", "red"])
def test_denoiser_training_reduces_validation_error(name):
    task = ct_task()
    record = train_denoiser(built(name, task), task, SETTINGS, seed=0, device=CPU)
    error = record["denoiser"]
    assert error["val_mse_before"] == pytest.approx(SETTINGS["denoiser_sigma"] ** 2, rel=0.1)  # starts as the identity
    assert error["val_mse_after"] < 0.7 * error["val_mse_before"]
    assert (record["steps"], record["batch_size"]) == (40, 4)


def test_denoiser_training_is_seeded_and_changes_only_the_denoiser():
    task = ct_task()
    settings = {**SETTINGS, "steps": 5}
    first, again, other = built("pnp", task), built("pnp", task), built("pnp", task)
    before = {k: v.clone() for k, v in first.state_dict().items()}
    train_denoiser(first, task, settings, seed=0, device=CPU)
    train_denoiser(again, task, settings, seed=0, device=CPU)
    train_denoiser(other, task, settings, seed=1, device=CPU)
    weights = first.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in again.state_dict().items())
    assert not all(torch.equal(weights[k], v) for k, v in other.state_dict().items())
    changed = {k for k in weights if not torch.equal(weights[k], before[k])}
    assert changed and all("denoiser" in k for k in changed)


def test_a_denoiser_method_must_expose_its_denoiser():
    with pytest.raises(MethodError, match="model.denoiser"):
        train_denoiser(torch.nn.Linear(1, 1), ct_task(), SETTINGS, seed=0, device=CPU)


def test_a_denoiser_method_cannot_claim_the_ei_loss(tmp_path):
    text = (ROOT / "methods" / "pnp" / "method.yaml").read_text().replace("losses: [sup]", "losses: [sup, ei]")
    (tmp_path / "pnp").mkdir()
    (tmp_path / "pnp" / "method.yaml").write_text(text)
    (tmp_path / "pnp" / "model.py").write_text((ROOT / "methods" / "pnp" / "model.py").read_text())
    with pytest.raises(ConfigError, match="key 'losses'"):
        load_method(tmp_path / "pnp")


def test_the_leaderboard_says_why_a_denoiser_method_has_no_ei_row():
    assert unsupported(load_method(ROOT / "methods" / "red").definition) == \
        "supports only: sup (its denoiser is trained on clean images)"
    assert unsupported(load_method(ROOT / "methods" / "unet").definition | {"losses": ["sup"]}) == "supports only: sup"
