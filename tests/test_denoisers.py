"""Denoiser training for PnP and RED: it denoises, it is seeded, it fits the denoiser alone."""

import math
import re

import numpy as np
import pytest
import torch

from deqbench.config import ROOT, ConfigError
from deqbench.datasets import ellipse_phantom, split_rng
from deqbench.denoisers import clean_images, photograph_patches, train_denoiser
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
    record = train_denoiser(built(name, task), task, "sup", SETTINGS, seed=0, device=CPU)
    error = record["denoiser"]
    assert error["val_mse_before"] == pytest.approx(SETTINGS["denoiser_sigma"] ** 2, rel=0.1)  # starts as the identity
    assert error["val_mse_after"] < 0.7 * error["val_mse_before"]
    assert (record["steps"], record["batch_size"]) == (40, 4)
    assert error["images"] == "task training images"  # under sup: the task's clean training images


def test_denoiser_training_is_seeded_and_changes_only_the_denoiser():
    task = ct_task()
    settings = {**SETTINGS, "steps": 5}
    first, again, other = built("pnp", task), built("pnp", task), built("pnp", task)
    before = {k: v.clone() for k, v in first.state_dict().items()}
    train_denoiser(first, task, "sup", settings, seed=0, device=CPU)
    train_denoiser(again, task, "sup", settings, seed=0, device=CPU)
    train_denoiser(other, task, "sup", settings, seed=1, device=CPU)
    weights = first.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in again.state_dict().items())
    assert not all(torch.equal(weights[k], v) for k, v in other.state_dict().items())
    changed = {k for k in weights if not torch.equal(weights[k], before[k])}
    assert changed and all("denoiser" in k for k in changed)


def test_a_denoiser_method_must_expose_its_denoiser():
    with pytest.raises(MethodError, match="model.denoiser"):
        train_denoiser(torch.nn.Linear(1, 1), ct_task(), "sup", SETTINGS, seed=0, device=CPU)


def test_a_method_with_nothing_to_train_cannot_tune(tmp_path):
    """losses [none] is one run shared by every section: no tuning criterion fits them all."""
    text = re.sub(r"losses: \[[a-z, ]+\]\ntraining: none", "losses: [none]",
                  (ROOT / "methods" / "tv" / "method.yaml").read_text())
    (tmp_path / "tv").mkdir()
    (tmp_path / "tv" / "method.yaml").write_text(text)
    (tmp_path / "tv" / "model.py").write_text((ROOT / "methods" / "tv" / "model.py").read_text())
    with pytest.raises(ConfigError, match="method.yaml: key 'tuning': losses \\[none\\]"):
        load_method(tmp_path / "tv")


def test_the_off_domain_denoiser_never_sees_a_target_image():
    """Under ei the denoiser trains on photographs: with every ground truth of the task NaN it
    still trains (so it reads none), and no patch is close to a target image."""
    task = ct_task()
    targets = torch.cat([task.splits[split]["x"] for split in task.splits]).flatten(1)
    for split in task.splits.values():
        split["x"] = torch.full_like(split["x"], float("nan"))
    record = train_denoiser(built("pnp", task), task, "ei", SETTINGS, seed=0, device=CPU)
    assert record["denoiser"]["images"] == "photographs" and math.isfinite(record["final_loss"])
    assert record["denoiser"]["val_mse_after"] < 0.8 * record["denoiser"]["val_mse_before"]
    patches = clean_images(task, "ei", seed=0)["train"].flatten(1)
    assert len(patches) == 16 and torch.isfinite(patches).all()
    nearest = torch.cdist(patches, targets).amin(dim=1) / patches.norm(dim=1)
    assert nearest.min() > 0.2


def test_photograph_patches_are_seeded_and_complex_with_a_zero_imaginary_part():
    first, again = photograph_patches(6, 32, 2, seed=3), photograph_patches(6, 32, 2, seed=3)
    assert torch.equal(first, again) and not torch.equal(first, photograph_patches(6, 32, 2, seed=4))
    assert first.shape == (6, 2, 32, 32) and first[:, 1].abs().max() == 0
    assert 0 <= first.min() and first.max() <= 1 and first[:, 0].std(dim=(1, 2)).min() > 0.01
