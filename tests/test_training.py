"""Training: determinism, resume after a crash, and failures recorded with their reason."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from deepinv.physics import GaussianNoise

import yaml

from deqbench import leaderboard
from deqbench.config import ROOT, load_yaml
from deqbench.io import load_torch, save_torch
from deqbench.methods import MethodError, build_model, discover
from deqbench.runs import evaluate_run, simulate_task, train_run
from deqbench.tasks import Task, build_physics, tomography
from deqbench.training import plateau, stopping_criterion, train

CT = {"physics": "tomography", "image_size": 16, "angles": 6, "noise_sigma": 0.01}
SETTINGS = {"steps": 6, "batch_size": 2, "lr": 1e-2, "checkpoint_every": 2,
            "ei_weight": 1.0, "ei_rotation_multiples": 1.0}
GATES = leaderboard.load_protocol()["gates"]


def tiny_task():
    physics = build_physics(CT, noise_seed=0)
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    return Task("ct", CT, physics, {"train": {"x": x, "y": physics(x)}})


class Correction(torch.nn.Module):
    """Adjoint followed by a small convolution; optionally raises once at a given call."""

    def __init__(self, crash_at=None, output=None):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.calls, self.crash_at, self.output = 0, crash_at, output

    def forward(self, y, physics):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("killed")
        x = self.conv(physics.A_adjoint(y))
        return self.output(x) if self.output else x


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("loss", ["sup", "ei"])
def test_same_seed_same_weights(tmp_path, loss):
    first, second = Correction(), Correction()
    train(first, tiny_task(), loss, SETTINGS, 0, torch.device("cpu"), tmp_path / "a.pt")
    train(second, tiny_task(), loss, SETTINGS, 0, torch.device("cpu"), tmp_path / "b.pt")
    for key, value in weights(first).items():
        assert torch.equal(value, second.state_dict()[key])


@pytest.mark.parametrize("loss", ["sup", "ei"])
def test_every_method_trains_alike_on_the_ct_matrix_and_on_deepinvs_tomography(tmp_path, loss):
    """The sparse CT matrix the tasks use (:class:`deqbench.tasks.MatrixTomography`) changes
    no training: two steps of every shipped method trained end to end through the
    operator give the same losses with it as with deepinv's own Tomography, to 1e-4
    relative (float32 on both; the two operators agree to 2e-7)."""
    matrix_task = tiny_task()
    deepinv_physics = tomography(CT["angles"], CT["image_size"])
    noise = torch.Generator().set_state(matrix_task.physics.noise_model.rng.get_state())  # EI draws noise
    deepinv_physics.noise_model = GaussianNoise(sigma=CT["noise_sigma"], rng=noise)
    deepinv_task = Task("ct", CT, deepinv_physics, matrix_task.splits)
    caps = {"forward.max_iter": 20, "backward.max_iter": 20}  # for time
    methods, _ = discover(ROOT / "methods", per_method={"deq-id": caps, "de-prox": caps,
                                                        "deq-jfb": {"forward.max_iter": 20},
                                                        "oder": {"forward.max_iter": 20}})
    trained = [m for m in methods.values() if m.training == "end-to-end" and loss in m.losses]
    assert {"deq-id", "deq-jfb", "oder", "unrolled", "unet"} <= {m.name for m in trained}
    settings = {**SETTINGS, "steps": 2, "lr": 1e-3}
    for method in trained:
        losses = []
        for task in (matrix_task, deepinv_task):
            torch.manual_seed(0)
            model = build_model(method, task)
            record = train(model, task, loss, settings, 0, torch.device("cpu"), tmp_path / f"{method.name}-{len(losses)}.pt")
            losses.append(torch.tensor(record["loss_history"]))
        assert torch.allclose(losses[0], losses[1], rtol=1e-4, atol=0), (method.name, losses)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
@pytest.mark.parametrize("loss", ["sup", "ei"])
def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(tmp_path, loss, schedule):
    settings = {**SETTINGS, "lr_schedule": schedule}
    reference = Correction()
    train(reference, tiny_task(), loss, settings, 0, torch.device("cpu"), tmp_path / "ref.pt")

    calls_per_step = {"sup": 1, "ei": 2}[loss]  # EI reconstructs the transformed image too
    crashing = Correction(crash_at=2 * calls_per_step + 1)  # dies in step 3, after the checkpoint of step 2
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(MethodError, match="killed"):
        train(crashing, tiny_task(), loss, settings, 0, torch.device("cpu"), checkpoint)
    assert load_torch(checkpoint)["step"] == 2

    resumed = Correction()
    torch.nn.init.zeros_(resumed.conv.weight)  # the checkpoint, not the init, must count
    record = train(resumed, tiny_task(), loss, settings, 0, torch.device("cpu"), checkpoint)
    assert record["resumed_from_step"] == 2
    for key, value in weights(reference).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


KILLED_TRAINING = """
import sys, time
from pathlib import Path
import torch
from test_training import SETTINGS, Correction, tiny_task
from deqbench.training import train


class Slow(Correction):
    def forward(self, y, physics):
        time.sleep(0.3)  # room for the kill to land mid-run
        return super().forward(y, physics)


train(Slow(), tiny_task(), sys.argv[2], SETTINGS, 0, torch.device("cpu"), Path(sys.argv[1]))
"""


def test_a_process_killed_mid_training_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL, not an exception: the checkpoint on disk must be whole and enough to resume."""
    reference = Correction()
    train(reference, tiny_task(), "sup", SETTINGS, 0, torch.device("cpu"), tmp_path / "ref.pt")

    checkpoint = tmp_path / "run.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    job = subprocess.Popen([sys.executable, "-c", KILLED_TRAINING, str(checkpoint), "sup"], env=env,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = load_torch(checkpoint)["step"]
    assert 0 < killed_at < SETTINGS["steps"]

    resumed = Correction()
    torch.nn.init.zeros_(resumed.conv.weight)
    record = train(resumed, tiny_task(), "sup", SETTINGS, 0, torch.device("cpu"), checkpoint)
    assert record["resumed_from_step"] == killed_at
    for key, value in weights(reference).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_non_finite_loss_is_a_method_failure(tmp_path):
    model = Correction(output=lambda x: x * float("nan"))
    with pytest.raises(MethodError, match="step 0: loss is nan"):
        train(model, tiny_task(), "sup", SETTINGS, 0, torch.device("cpu"), tmp_path / "c.pt")


def test_time_budget_is_a_method_failure(tmp_path):
    with pytest.raises(MethodError, match="exceeded its budget"):
        train(Correction(), tiny_task(), "sup", {**SETTINGS, "time_budget_s": 1e-9}, 0,
              torch.device("cpu"), tmp_path / "c.pt")


@pytest.fixture
def simulated(tmp_path):
    images = tmp_path / "images.pt"
    save_torch({s: torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(i))
                for i, s in enumerate(["train", "val", "test"])}, images)
    simulate_task(CT, str(images), None, 0, str(tmp_path / "ct.pt"), str(tmp_path / "ct.json"))
    return tmp_path


def write_method(folder, model_text):
    folder.mkdir()
    (folder / "method.yaml").write_text("name: Conv\nfamily: post-processing\ndescription: d\nlosses: [sup]\n")
    (folder / "model.py").write_text(model_text)
    return folder


CONV_MODEL = """import torch


class Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, y, physics):
        return self.conv(physics.A_adjoint(y))


def build(hparams, task):
    return Conv()
"""


def run_once(root, method_dir, settings=SETTINGS):
    common = dict(task_name="ct", task_cfg=CT, task_file=str(root / "ct.pt"), method_dir=str(method_dir),
                  loss="sup", settings=settings, seed=0, device_name="cpu")
    run_dir = root / "runs"
    train_run(**common, out_model=str(run_dir / "model.pt"), out_record=str(run_dir / "train.json"))
    evaluate_run(**common, data_seed=0, evaluation_settings={"warmup": 0, "draws": 2}, model_file=str(run_dir / "model.pt"), record_file=str(run_dir / "train.json"),
                 out_images=str(run_dir / "images.csv"), out_run=str(run_dir / "run.json"),
                 out_recons=str(run_dir / "recons.pt"))
    return run_dir


def test_raising_the_step_cap_continues_a_finished_run(simulated):
    """The step cap is no part of a run's identity: raised, a finished run resumes from its
    checkpoint and ends with the weights of a run trained with that cap from the start;
    lowered below the checkpoint's step, the run trains again from its first step."""
    method = write_method(simulated / "conv", CONV_MODEL)
    common = dict(task_name="ct", task_cfg=CT, task_file=str(simulated / "ct.pt"), method_dir=str(method),
                  loss="sup", seed=0, device_name="cpu")

    def trained(directory, steps):
        train_run(**common, settings={**SETTINGS, "steps": steps}, out_model=str(directory / "model.pt"),
                  out_record=str(directory / "train.json"))
        return load_torch(directory / "model.pt"), json.loads((directory / "train.json").read_text())

    trained(simulated / "raised", 4)
    raised, record = trained(simulated / "raised", 6)
    fresh, _ = trained(simulated / "fresh", 6)
    assert record["resumed_from_step"] == 4 and record["steps"] == 6 and record["status"] == "ok"
    assert fresh.keys() == raised.keys() and all(torch.equal(raised[k], fresh[k]) for k in fresh)
    _, lowered = trained(simulated / "raised", 2)
    assert lowered["resumed_from_step"] == 0 and lowered["steps"] == 2


def test_a_cosine_schedule_anneals_over_the_cap_which_is_then_part_of_the_run(simulated):
    """Under ``lr_schedule: cosine`` the learning rate falls to zero at the cap, so the
    weights differ from a constant-rate run's, and a raised cap trains again from step 0."""
    method = write_method(simulated / "conv", CONV_MODEL)
    common = dict(task_name="ct", task_cfg=CT, task_file=str(simulated / "ct.pt"), method_dir=str(method),
                  loss="sup", seed=0, device_name="cpu")

    def trained(directory, **settings):
        train_run(**common, settings={**SETTINGS, **settings}, out_model=str(directory / "model.pt"),
                  out_record=str(directory / "train.json"))
        return load_torch(directory / "model.pt"), json.loads((directory / "train.json").read_text())

    constant, _ = trained(simulated / "constant", steps=4)
    cosine, record = trained(simulated / "cosine", steps=4, lr_schedule="cosine")
    assert record["lr_schedule"] == "cosine" and record["status"] == "ok"
    assert not torch.equal(constant["conv.weight"], cosine["conv.weight"])
    checkpoint = load_torch(simulated / "cosine" / "checkpoint.pt")
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0, abs=1e-12)
    _, raised = trained(simulated / "cosine", steps=6, lr_schedule="cosine")
    assert raised["resumed_from_step"] == 0 and raised["steps"] == 6


def test_a_raising_method_is_recorded_as_failed(simulated):
    method = write_method(simulated / "raises", CONV_MODEL.replace("return self.conv(", "raise ValueError('bad') or self.conv("))
    run_dir = run_once(simulated, method)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and "ValueError: bad" in run["reason"]


def test_a_stale_result_is_not_mixed_into_the_leaderboard(simulated):
    method = write_method(simulated / "conv", CONV_MODEL)
    run_dir = run_once(simulated, method)
    out = simulated / "board"
    out.mkdir()

    def board():
        leaderboard.write([str(run_dir / "run.json")], ["ct"], [str(method)], {}, leaderboard.PROTOCOL, 0, str(out / "b.csv"),
                          str(out / "b.md"))
        return (out / "b.csv").read_text()

    assert ",ok," in board()
    (method / "model.py").write_text(CONV_MODEL.replace("padding=1", "padding=1, bias=False"))
    table = board()
    assert ",stale," in table and ",ok," not in table


def test_a_checkpoint_from_another_configuration_is_not_resumed(simulated):
    method = write_method(simulated / "conv", CONV_MODEL)
    run_dir = run_once(simulated, method)
    save_torch({"identity": {"other": True}, "step": 99}, run_dir / "checkpoint.pt")
    train_run(task_name="ct", task_cfg=CT, task_file=str(simulated / "ct.pt"), method_dir=str(method), loss="sup",
              settings=SETTINGS, seed=0, device_name="cpu", out_model=str(run_dir / "model.pt"),
              out_record=str(run_dir / "train.json"))
    assert json.loads((run_dir / "train.json").read_text())["resumed_from_step"] == 0


def board_of(run_dir, method, out):
    out.mkdir()
    leaderboard.write([str(run_dir / "run.json")], ["ct"], [str(method)], {}, leaderboard.PROTOCOL, 0, str(out / "b.csv"),
                      str(out / "b.md"))
    return leaderboard.pd.read_csv(out / "b.csv").iloc[0]


def test_a_non_contractive_deq_is_marked_unreliable_with_its_numbers_kept(simulated):
    """DEQ-ID with a step of 3 / ||A||^2 (the data-consistency step alone has eigenvalue -2):
    a real train and evaluate job, then the leaderboard. Anderson still finds the fixed
    point (no solve hits its cap), so only the spectral radius shows it. The shipped
    setting on the same task is not marked."""
    rows = {}
    for name, changes in (("expansive", {"step": 3.0}), ("shipped", {})):
        method = simulated / name
        shutil.copytree(ROOT / "methods" / "deq-id", method)
        definition = load_yaml(method / "method.yaml")
        definition["hyperparameters"].update(changes)
        (method / "method.yaml").write_text(yaml.safe_dump(definition))
        run_dir = run_once(simulated, method, {**SETTINGS, "steps": 2, "fidelity_every": 1})
        shutil.move(run_dir, simulated / f"runs-{name}")
        rows[name] = board_of(simulated / f"runs-{name}", method, simulated / f"board-{name}")
    expansive, shipped = rows["expansive"], rows["shipped"]
    assert expansive["status"] == "unreliable" and "not contractive" in expansive["reason"]
    assert expansive["psnr"] == expansive["psnr"]  # the numbers stay on the row (not NaN)
    assert shipped["status"] == "ok" and shipped["spectral_radius_max"] < 1
    assert shipped["gradient_cosine_min"] >= GATES["gradient_cosine"]["min"]


def test_the_nearest_training_image_row_is_a_brute_force_search(tmp_path):
    """On a toy split (test image 1 a noisy copy of training image 2), every test image's
    row scores the training image that a brute-force search finds closest."""
    from deqbench.evaluation import nearest_training_rows
    from deqbench.metrics import psnr

    generator = torch.Generator().manual_seed(0)
    train_x = torch.rand(5, 1, 16, 16, generator=generator)
    test_x = torch.stack([torch.rand(1, 16, 16, generator=generator),
                          train_x[2] + 0.01 * torch.randn(1, 16, 16, generator=generator)])
    task = Task("ct", CT, build_physics(CT), {"train": {"x": train_x}, "test": {"x": test_x}})
    rows = nearest_training_rows(task)
    assert [row["nearest_train_image"] for row in rows][1] == 2
    for row, truth in zip(rows, test_x[:, 0].double().numpy(), strict=True):
        scores = [psnr(truth, candidate) for candidate in train_x[:, 0].double().numpy()]
        assert row["psnr"] == pytest.approx(max(scores)) and row["nearest_train_image"] == scores.index(max(scores))


def test_plateau_counts_the_points_since_the_last_real_improvement():
    curve = [{"criterion": c} for c in (1.0, 2.0, 2.05, 2.04, 2.08)]
    assert plateau(curve, patience=3, min_delta_db=0.1) == (1, True)
    assert plateau(curve, patience=4, min_delta_db=0.1) == (1, False)
    assert plateau(curve, patience=1, min_delta_db=0.0) == (4, False)


def validated_task():
    task = tiny_task()
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    task.splits["val"] = {"x": x, "y": task.physics(x)}
    return task


@pytest.mark.parametrize("loss", ["sup", "ei"])
def test_early_stopping_stops_and_keeps_the_best_weights_without_changing_training(tmp_path, loss):
    """No point can beat the first by 100 dB: the run stops at the second point (patience 1),
    with the weights of the first, which equal those of a run of that many steps: measuring
    the criterion draws nothing from the training's random streams."""
    settings = {**SETTINGS, "steps": 12, "validation_every": 2}
    stopping = Correction()
    never_better = {**settings, "early_stopping": {"patience": 1, "min_delta_db": 100}}
    record = train(stopping, validated_task(), loss, never_better, 0, torch.device("cpu"), tmp_path / "a.pt")
    assert record["stopped_early"] and record["steps"] == 4 and record["max_steps"] == 12
    assert record["best_step"] == 2 and [p["step"] for p in record["validation"]] == [2, 4]
    short = Correction()
    train(short, validated_task(), loss, {**settings, "steps": 2}, 0, torch.device("cpu"), tmp_path / "b.pt")
    for key, value in weights(short).items():
        assert torch.equal(value, stopping.state_dict()[key]), key


def test_early_stopping_runs_to_the_cap_while_the_criterion_improves(tmp_path):
    settings = {**SETTINGS, "steps": 6, "validation_every": 2, "early_stopping": {"patience": 2, "min_delta_db": 0}}
    record = train(Correction(), validated_task(), "sup", settings, 0, torch.device("cpu"), tmp_path / "a.pt")
    criteria = [p["criterion"] for p in record["validation"]]
    assert criteria == [p["val_psnr"] for p in record["validation"]]  # sup: the validation PSNR
    assert not record["stopped_early"] and record["steps"] == 6


def test_the_ei_stopping_criterion_reads_no_ground_truth():
    task = validated_task()
    task.splits["val"] = {"y": task.splits["val"]["y"]}  # no x to read
    settings = {**SETTINGS, "validation_every": 2}
    first = stopping_criterion(Correction(), task, "ei", settings, torch.device("cpu"))
    again = stopping_criterion(Correction(), task, "ei", settings, torch.device("cpu"))
    assert math.isfinite(first) and first == again
    with pytest.raises(KeyError):
        stopping_criterion(Correction(), task, "sup", settings, torch.device("cpu"))
