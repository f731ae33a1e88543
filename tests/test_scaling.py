"""Scaling studies: where a swept value goes, and one measured point with a shipped method."""

import json
import math

import pytest

from conftest import ROOT
from deqbench.check import tiny_task
from deqbench.config import ConfigError
from deqbench.io import save_torch
from deqbench.runs import measure_scaling_point
from deqbench.scaling import point_settings, study_points

TASK = {"physics": "tomography", "dataset": "ellipses", "image_size": 32, "angles": 12, "noise_sigma": 0.01}
DEQ = {"forward": {"tol": 1e-3, "max_iter": 30}, "backward": {"tol": 1e-3, "max_iter": 30}, "step": 0.5}
ITERATIONS = {"task": "ct", "axis": "iterations", "values": [5, 10], "methods": {
    "deq": {"sweep": ["hyperparameters.forward.max_iter", "hyperparameters.backward.max_iter"],
            "fixed": {"hyperparameters.forward.tol": 0}},
    "absent": {"sweep": ["hyperparameters.iterations"]},
}}
TRAINING = {"lr": 1e-3, "ei_weight": 1.0, "ei_rotation_multiples": 1.0, "denoiser_sigma": 0.05}


def test_swept_and_fixed_values_reach_nested_hyperparameters_and_the_task():
    task, hparams = point_settings(ITERATIONS, "deq", 10, TASK, DEQ)
    assert hparams["forward"] == {"tol": 0, "max_iter": 10} and hparams["backward"]["max_iter"] == 10
    assert task == TASK and DEQ["forward"]["max_iter"] == 30  # the inputs are not modified
    angles = {"task": "ct", "axis": "angles", "values": [60], "methods": {"deq": {"sweep": ["task.angles"]}}}
    task, hparams = point_settings(angles, "deq", 60, TASK, DEQ)
    assert task["angles"] == 60 and hparams == DEQ


def test_a_misspelt_path_stops_with_its_name():
    study = {**ITERATIONS, "methods": {"deq": {"sweep": ["hyperparameters.forward.max_iters"]}}}
    with pytest.raises(ConfigError, match="'deq'.*hyperparameters.forward.max_iters"):
        point_settings(study, "deq", 5, TASK, DEQ)
    with pytest.raises(ConfigError, match="hyperparameters.step.size"):
        point_settings({**ITERATIONS, "methods": {"deq": {"sweep": ["hyperparameters.step.size"]}}},
                       "deq", 5, TASK, DEQ)


def test_points_leave_out_absent_methods_with_a_message_and_check_the_task():
    points, left_out = study_points({"iterations": ITERATIONS}, {"deq": DEQ}, {"ct": TASK})
    assert points == [("iterations", "deq", 5), ("iterations", "deq", 10)]
    assert len(left_out) == 1 and "'absent'" in left_out[0]
    with pytest.raises(ConfigError, match="no task 'ct'"):
        study_points({"iterations": ITERATIONS}, {"deq": DEQ}, {"mri": TASK})
    points, left_out = study_points({"iterations": ITERATIONS}, {"deq": DEQ}, {"mri": TASK}, ["ct", "mri"])
    assert points == [] and "task 'ct' is not among this run's tasks" in left_out[0]  # run_tasks: [mri]


@pytest.mark.parametrize("angles", [8, 16])
def test_a_unet_point_is_measured_at_each_number_of_views(tmp_path, angles):
    save_torch({"train": tiny_task("ct").splits["train"]["x"][:, 0]}, tmp_path / "data.pt")
    study = {"task": "ct", "axis": "angles", "values": [angles], "methods": {"unet": {"sweep": ["task.angles"]}}}
    out = tmp_path / "point.json"
    measure_scaling_point("measurements", study, str(ROOT / "methods" / "unet"), angles, TASK, str(tmp_path / "data.pt"),
                          TRAINING, {"loss": "sup", "steps": 2, "batch_size": 2}, 0, "cpu", str(out))
    record = json.loads(out.read_text())
    assert record["status"] == "ok" and record["task_config"]["angles"] == angles
    assert record["steps"] == 2 and record["step_time_median_s"] > 0
    assert record["memory_kind"] and math.isfinite(record["train_peak_memory_mb"])
