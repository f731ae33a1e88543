"""Hyperparameter selection on the validation split: what it picks, and that the test
split cannot inform it."""

import math
from collections.abc import Mapping

import pytest
import torch

from deepinv.physics import MRI

import deqbench.runs
from deqbench.blocks.data import centre_columns, held_out_folds
from deqbench.config import ROOT
from deqbench.io import read_json, save_torch
from deqbench.methods import MethodError, build_model, load_method
from deqbench.runs import tune_run
from deqbench.tasks import MatrixTomography, draw_mri_mask, tomography
from deqbench.tuning import CRITERIA, mean_psnr, select
from test_denoisers import ct_task

CPU = torch.device("cpu")


class Scaled(torch.nn.Module):
    """``scale * y``, diverging (NaN) above ``diverges_above``."""

    def __init__(self, scale, diverges_above=1.5):
        super().__init__()
        self.scale, self.diverges_above = scale, diverges_above

    def forward(self, y, physics):
        return y * (self.scale if self.scale <= self.diverges_above else float("nan"))


def identity_split():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    return {"x": x, "y": x}


def test_select_picks_the_best_candidate_and_skips_diverged_ones():
    record = select(lambda theta: Scaled(theta["scale"]), {"scale": [0.5, 0.9, 0.97, 2.0]},
                    identity_split(), None, CPU)
    assert record["chosen"] == {"scale": 0.97}
    assert math.isnan(record["candidates"][3]["val_psnr"])
    assert record["chosen_on_grid_edge"] == [] and record["val_images"] == 3


def test_select_flags_a_choice_on_the_edge_of_the_grid():
    record = select(lambda theta: Scaled(theta["scale"]), {"scale": [0.5, 0.9]}, identity_split(), None, CPU)
    assert record["chosen"] == {"scale": 0.9} and record["chosen_on_grid_edge"] == ["scale"]


def test_select_fails_the_method_when_every_candidate_diverges():
    with pytest.raises(MethodError, match="every candidate"):
        select(lambda theta: Scaled(theta["scale"]), {"scale": [2.0, 3.0]}, identity_split(), None, CPU)


class HiddenTestSplits(Mapping):
    """A task's splits where reading ``test`` or ``ood`` fails the test."""

    def __init__(self, splits):
        self.splits = splits

    def __getitem__(self, split):
        if split in ("test", "ood"):
            raise AssertionError(f"hyperparameter selection read the '{split}' split")
        return self.splits[split]

    def __iter__(self):
        return iter(self.splits)

    def __len__(self):
        return len(self.splits)


@pytest.mark.parametrize("name", ["tv", "pnp"])
def test_tuning_never_reads_the_test_split(tmp_path, monkeypatch, name):
    """Test images are NaN and guarded: tuning still works, so it neither reads nor uses them."""
    task = ct_task(sizes=(("train", 4), ("val", 4), ("test", 2), ("ood", 2)))
    for split in ("test", "ood"):
        task.splits[split] = {k: torch.full_like(v, float("nan")) for k, v in task.splits[split].items()}
    save_torch({"mask": None, "splits": task.splits}, tmp_path / "ct.pt")
    load = deqbench.runs.load_torch

    def load_hiding_test_splits(path, **kwargs):
        data = load(path, **kwargs)
        return {**data, "splits": HiddenTestSplits(data["splits"])} if "splits" in data else data

    monkeypatch.setattr(deqbench.runs, "load_torch", load_hiding_test_splits)
    tune_run(task_name="ct", task_cfg=task.config, task_file=str(tmp_path / "ct.pt"),
             method_dir=str(ROOT / "methods" / name), loss="sup",
             settings={}, seed=0, device_name="cpu", model_file=None, record_file=None,
             out_tuning=str(tmp_path / "tuning.json"))
    record = read_json(tmp_path / "tuning.json")
    assert record["status"] == "ok", record.get("reason")
    assert all(math.isfinite(c["val_psnr"]) for c in record["candidates"])
    assert record["val_images"] == 4


def tune_tv(task):
    tv = load_method(ROOT / "methods" / "tv")
    return select(lambda theta: build_model(tv, task, chosen=theta), tv.tuning, task.splits["val"], task.physics, CPU)


def test_tv_weight_grows_with_the_noise_level():
    quiet, noisy = tune_tv(ct_task(noise_sigma=0.002)), tune_tv(ct_task(noise_sigma=0.05))
    assert noisy["chosen"]["weight"] > quiet["chosen"]["weight"]


def test_tuned_tv_beats_filtered_back_projection_on_validation():
    task = ct_task(noise_sigma=0.05)
    tuned = tune_tv(task)
    fbp = mean_psnr(build_model(load_method(ROOT / "methods" / "direct"), task), task.splits["val"], task.physics, CPU)
    chosen = next(c for c in tuned["candidates"] if c["weight"] == tuned["chosen"]["weight"])
    assert chosen["val_psnr"] > fbp + 3


class GroundTruthGuard(dict):
    """A split whose ground truth ``x`` fails the test when read."""

    def __getitem__(self, key):
        if key == "x":
            raise AssertionError("tuning for a section without ground truth read the validation images")
        return super().__getitem__(key)


@pytest.mark.parametrize("name", ["tv", "pnp"])
def test_tuning_for_an_ei_section_reads_no_ground_truth(tmp_path, monkeypatch, name):
    task = ct_task(sizes=(("train", 4), ("val", 4), ("test", 2), ("ood", 2)))
    save_torch({"mask": None, "splits": task.splits}, tmp_path / "ct.pt")
    load = deqbench.runs.load_torch

    def load_guarding_ground_truth(path, **kwargs):
        data = load(path, **kwargs)
        if "splits" not in data:
            return data
        return {**data, "splits": HiddenTestSplits({"train": GroundTruthGuard(data["splits"]["train"]),
                                                     "val": GroundTruthGuard(data["splits"]["val"]),
                                                     "test": None, "ood": None})}

    monkeypatch.setattr(deqbench.runs, "load_torch", load_guarding_ground_truth)
    tune_run(task_name="ct", task_cfg=task.config, task_file=str(tmp_path / "ct.pt"),
             method_dir=str(ROOT / "methods" / name), loss="ei", settings={}, seed=0, device_name="cpu",
             model_file=None, record_file=None, out_tuning=str(tmp_path / "tuning.json"))
    record = read_json(tmp_path / "tuning.json")
    assert record["status"] == "ok", record.get("reason")
    assert record["criterion"] == CRITERIA[False]
    assert all(math.isfinite(c["val_held_out_error"]) for c in record["candidates"])


class Tikhonov(torch.nn.Module):
    """:math:`\\hat x = (A^\\top A + \\lambda I)^{-1} A^\\top y` with the dense matrix of the
    given CT operator: the posterior mean when :math:`x \\sim N(0, I)` and the noise is
    :math:`N(0, \\sigma^2 I)` with :math:`\\lambda = \\sigma^2`."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, y, physics):
        a = physics.matrix.to_dense().double()
        normal = a.T @ a + self.weight * torch.eye(a.shape[1], dtype=a.dtype)
        x = torch.linalg.solve(normal, a.T @ y.flatten(1).double().T).T
        return x.float().view(len(y), 1, physics.img_width, physics.img_width)


def test_held_out_measurements_pick_the_known_best_weight():
    """For Gaussian images and noise the best predictor of held-out measurements from kept
    ones is the posterior mean, Tikhonov with weight sigma^2: the criterion picks it."""
    physics = tomography(12, 16, kind=MatrixTomography)
    sigma = 0.3
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 16, 16, generator=generator)
    y = physics.A(x) + sigma * torch.randn(physics.A(x).shape, generator=generator)
    grid = {"weight": [sigma ** 2 * factor for factor in (0.1, 0.3, 1.0, 3.0, 10.0)]}
    record = select(lambda theta: Tikhonov(theta["weight"]), grid, {"y": y}, physics, CPU, loss="ei")
    assert record["chosen"] == {"weight": sigma ** 2}
    assert record["criterion"] == CRITERIA[False] and record["val_images"] == 64


def test_mri_folds_hold_out_every_sampled_column_but_the_centre_once():
    mask = draw_mri_mask({"image_size": 32, "acceleration": 4, "center_fraction": 0.1}, seed=0)
    physics = MRI(mask=mask, img_size=(32, 32))
    sampled = mask[0].amin(dim=0) > 0
    held = torch.zeros(32)
    for (kept, _), (held_out, _) in held_out_folds(physics, 5):
        assert torch.equal(kept.mask + held_out.mask, physics.mask)
        held += held_out.mask.reshape(-1, 32, 32)[0].amax(dim=0)
    centre = centre_columns(sampled)
    assert held[centre].sum() == 0 and len(centre) > 0
    outer = sampled.clone()
    outer[centre] = False
    assert torch.equal(held[outer], torch.ones(int(outer.sum()))) and held[~sampled].sum() == 0
