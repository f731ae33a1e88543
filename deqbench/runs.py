"""The jobs that compute results, one function per Snakemake rule (the rule scripts only
call these): prepare a dataset, simulate a task, train, tune and evaluate a run, measure a
scaling point. The jobs that summarise results live with what they write
(:func:`deqbench.leaderboard.write`, :func:`deqbench.report.write`,
:func:`deqbench.scaling.write_summary`).

A *run* is one method trained under one loss on one task. Its failures in the
method's own code are recorded (``status: failed`` and the reason) and the benchmark
goes on; infrastructure errors (missing data, bad config) raise.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from deqbench import datasets, evaluation, scaling, tasks, tuning
from deqbench.provenance import code_fingerprint, config_hash, file_digest, provenance
from deqbench.denoisers import train_denoiser
from deqbench.io import load_torch, read_json, save_torch, write_bytes_atomic, write_json
from deqbench.losses import LOSSES, needs_ground_truth
from deqbench.measure import resolve_device
from deqbench.methods import Method, MethodError, build_model, load_method, method_code
from deqbench.samples import sample_reconstructions
from deqbench.training import cap_shapes_schedule, train

def prepare_dataset(dataset_dir: str, overrides: dict, seed: int, out_data: str, out_manifest: str) -> None:
    """Generate a dataset and record its sha256 and shapes."""
    spec = datasets.load_spec(dataset_dir, overrides)
    splits = datasets.prepare(spec, seed)
    save_torch(splits, out_data)
    write_json({
        "name": spec["name"], "source": spec["source"], "licence": spec["licence"],
        "image_size": spec["image_size"], "seed": seed, "sha256": file_digest(out_data),
        "splits": {split: list(images.shape) for split, images in splits.items()},
    }, out_manifest)


def simulate_task(task_cfg: dict, data: str, ood_data: str | None, seed: int,
                  out_task: str, out_manifest: str) -> None:
    """Simulate measurements for the train/val/test splits and the held-out ``ood`` set."""
    images = dict(load_torch(data))
    if ood_data:
        images["ood"] = next(iter(load_torch(ood_data).values()))
    simulated = tasks.simulate(task_cfg, images, seed)
    save_torch(simulated, out_task)
    write_json({"config": task_cfg, "seed": seed, "sha256": file_digest(out_task),
                "splits": {s: {k: list(v.shape) for k, v in d.items()}
                           for s, d in simulated["splits"].items()}}, out_manifest)


def run_identity(task_name: str, task_cfg: dict, task_file: str, method: Method, loss: str,
                 settings: dict, seed: int) -> dict:
    """What a run's result depends on (config, data, method folder, the package code that
    computes results): guards resumes and lets the leaderboard refuse stale results.

    The step cap ``settings["steps"]`` is left out under a constant learning rate: no step
    depends on it, so a run whose cap is raised continues from its checkpoint
    (:func:`train_run`) to the weights a run trained with that cap from the start would
    have. A cosine schedule is set by the cap, which then stays in."""
    uncapped = {key: value for key, value in settings.items() if key != "steps" or cap_shapes_schedule(settings)}
    return {
        "task": task_name, "method": method.name, "loss": loss, "seed": seed,
        "config_hash": config_hash(task_cfg, method.definition, loss, uncapped, seed),
        "data_sha256": file_digest(task_file),
        "method_sha256": method.fingerprint(),
        "code_sha256": code_fingerprint(),
    }


@contextmanager
def failure_recorded(record: dict):
    """Record a failure of the method's own code in ``record`` (``status: failed`` and the
    reason, the traceback in the job's log) instead of raising it."""
    try:
        yield
    except MethodError as err:
        record.update(status="failed", reason=str(err))
        traceback.print_exc(file=sys.stdout)


def load_run_task(task_name: str, task_cfg: dict, task_file: str, seed: int, device: torch.device):
    return tasks.load_task(task_name, task_cfg, load_torch(task_file), noise_seed=seed, device=device)


def train_run(task_name: str, task_cfg: dict, task_file: str, method_dir: str, loss: str,
              settings: dict, seed: int, device_name: str, out_model: str, out_record: str,
              shared_hyperparameters: dict | None = None, method_hyperparameters: dict | None = None) -> None:
    """Train one method (end to end, or its denoiser alone); a failure of the method's code
    is recorded, not raised."""
    device = resolve_device(device_name)
    method = load_method(method_dir, shared_hyperparameters, method_hyperparameters)
    identity = run_identity(task_name, task_cfg, task_file, method, loss, settings, seed)
    checkpoint = Path(out_model).with_name("checkpoint.pt")
    record = {**identity, "status": "ok", "provenance": provenance(device)}
    task = load_run_task(task_name, task_cfg, task_file, seed, device)
    weights = {}
    with failure_recorded(record):
        torch.manual_seed(seed)  # the initial weights follow the config seed
        model = build_model(method, task, device)
        if method.training == "denoiser":
            record.update(train_denoiser(model, task, loss, settings, seed, device))
        else:
            record.update(train(model, task, loss, settings, seed, device, checkpoint, identity))
        weights = model.state_dict()
    save_torch(weights, out_model)
    write_json(record, out_record)


def tune_run(task_name: str, task_cfg: dict, task_file: str, method_dir: str, loss: str,
             settings: dict, seed: int, device_name: str, model_file: str | None,
             record_file: str | None, out_tuning: str, shared_hyperparameters: dict | None = None,
             method_hyperparameters: dict | None = None) -> None:
    """Choose a method's ``tuning`` hyperparameters on the validation split, the only split
    loaded (under a loss without ground truth, its measurements alone); a failure of the
    method's code, or of its training, is recorded, not raised."""
    device = resolve_device(device_name)
    method = load_method(method_dir, shared_hyperparameters, method_hyperparameters)
    record = {**run_identity(task_name, task_cfg, task_file, method, loss, settings, seed),
              "status": "ok", "provenance": provenance(device)}
    trained = read_json(record_file) if record_file else {"status": "ok"}
    if trained["status"] != "ok":
        record.update(status="failed", reason=trained["reason"])
    else:
        data = load_torch(task_file)
        validation = data["splits"]["val"] if needs_ground_truth(loss) else {"y": data["splits"]["val"]["y"]}
        task = tasks.load_task(task_name, task_cfg, {**data, "splits": {"val": validation}},
                               noise_seed=seed, device=device)
        weights = load_torch(model_file, map_location=device) if model_file else None

        def build(chosen: dict) -> torch.nn.Module:
            model = build_model(method, task, device, chosen)
            if weights is not None:
                model.load_state_dict(weights)
            return model

        torch.manual_seed(seed)
        with failure_recorded(record):
            record.update(tuning.select(build, method.tuning, task.splits["val"], task.physics, device, loss))
    write_json(record, out_tuning)


def evaluate_run(task_name: str, task_cfg: dict, task_file: str, method_dir: str, loss: str,
                 settings: dict, seed: int, data_seed: int, device_name: str, evaluation_settings: dict,
                 model_file: str | None, record_file: str | None, out_images: str, out_run: str,
                 out_recons: str, tuning_file: str | None = None,
                 shared_hyperparameters: dict | None = None, method_hyperparameters: dict | None = None) -> None:
    """Score one run on the test and ood splits, with its hyperparameters chosen on
    validation if it has any, and keep its first test reconstructions (empty when it
    failed); a failed or failing method gets its reason. Test-time rotations follow the
    ``data_seed``, the same for every run."""
    device = resolve_device(device_name)
    method = load_method(method_dir, shared_hyperparameters, method_hyperparameters)
    run = {**run_identity(task_name, task_cfg, task_file, method, loss, settings, seed),
           "name": method.definition["name"], "family": method.definition["family"], "status": "ok",
           "provenance": provenance(device)}
    rows, recons = [], {}
    for stage, path in (("train", record_file), ("tuning", tuning_file)):
        if path and run["status"] == "ok":
            run[stage] = read_json(path)
            if run[stage]["status"] != "ok":
                run.update(status="failed", reason=run[stage]["reason"])
    if run["status"] == "ok":
        task = load_run_task(task_name, task_cfg, task_file, seed, device)
        torch.manual_seed(seed)
        with failure_recorded(run), method_code("evaluation"):
            model = build_model(method, task, device, run.get("tuning", {}).get("chosen"))
            if model_file:
                model.load_state_dict(load_torch(model_file, map_location=device))
            scored, summary = evaluation.evaluate(model, task, device, evaluation_settings["warmup"], data_seed,
                                                  evaluation_settings["draws"])
            samples = sample_reconstructions(model, task, device)
            rows, run["evaluation"], recons = scored, summary, samples  # only once all succeeded
    frame = pd.DataFrame(rows, columns=None if rows else evaluation.image_columns())
    write_bytes_atomic(frame.to_csv(index=False).encode(), out_images)
    save_torch(recons, out_recons)
    write_json(run, out_run)


NEAREST_TRAINING = {"method": "nearest-train", "loss": "none", "name": "nearest training image",
                    "family": "oracle", "status": "oracle",
                    "reason": "the training image closest to each test image's ground truth, which it sees: "
                              "the score a memorising model reaches; not ranked"}


def nearest_training_run(task_name: str, task_cfg: dict, task_file: str, seed: int, out_images: str,
                         out_run: str, out_recons: str) -> None:
    """The oracle row of a task (:func:`deqbench.evaluation.nearest_training_rows`): shown
    with its numbers, never ranked; its identity has no method folder."""
    task = load_run_task(task_name, task_cfg, task_file, seed, torch.device("cpu"))
    frame = pd.DataFrame(evaluation.nearest_training_rows(task))
    write_bytes_atomic(frame.to_csv(index=False).encode(), out_images)
    save_torch({}, out_recons)
    write_json({"task": task_name, **NEAREST_TRAINING, "seed": seed, "data_sha256": file_digest(task_file),
                "method_sha256": None, "code_sha256": code_fingerprint(),
                "provenance": provenance(torch.device("cpu"))}, out_run)


def measure_scaling_point(study_name: str, study: dict, method_dir: str, value: int, task_cfg: dict,
                          data_file: str, training_settings: dict, scaling_settings: dict, seed: int,
                          device_name: str, out_record: str, shared_hyperparameters: dict | None = None,
                          method_hyperparameters: dict | None = None) -> None:
    """Train one method for a few steps at one point of a scaling study and record the
    median step time and peak memory; a failure of the method's code is recorded."""
    device = resolve_device(device_name)
    method = load_method(method_dir, shared_hyperparameters, method_hyperparameters)
    point_task, hyperparameters = scaling.point_settings(study, method.name, value, task_cfg,
                                                         method.hyperparameters)
    images = {"train": load_torch(data_file)["train"][:scaling_settings["batch_size"]]}
    task = tasks.load_task(study["task"], point_task, tasks.simulate(point_task, images, seed),
                           noise_seed=seed, device=device)
    settings = {**training_settings, "steps": scaling_settings["steps"],
                "batch_size": scaling_settings["batch_size"], "checkpoint_every": scaling_settings["steps"],
                "validation_every": 0}  # a scaling point has a training split only
    record = {"study": study_name, "method": method.name, "value": value, "status": "ok",
              "task_config": point_task, "hyperparameters": hyperparameters, "provenance": provenance(device)}
    with failure_recorded(record):
        model = build_model(method, task, device, {**tuning.combinations(method.tuning)[0], **hyperparameters})
        with tempfile.TemporaryDirectory() as scratch:
            trained = train(model, task, scaling_settings["loss"], settings, seed, device,
                            Path(scratch) / "checkpoint.pt")
        record.update({key: trained[key] for key in ("step_time_median_s", "train_peak_memory_mb",
                                                     "memory_kind", "steps", "batch_size", "parameters")})
        record.update({f"fp_{k}": v for k, v in (getattr(model, "stats", None) or {}).items()})
    write_json(record, out_record)
