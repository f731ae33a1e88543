"""Hyperparameter selection on the validation split: what it picks, and that the test
split cannot inform it."""

import math
from collections.abc import Mapping

import pytest
import torch

import deqbench.runs
from deqbench.config import ROOT
from deqbench.io import read_json, save_torch
from deqbench.methods import MethodError, build_model, load_method
from deqbench.runs import tune_run
from deqbench.tuning import mean_psnr, select
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
             method_dir=str(ROOT / "methods" / name), loss="none" if name == "tv" else "sup",
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
