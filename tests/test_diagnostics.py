"""The equivariance error and the saved sample reconstructions, on maps with a known answer."""

import numpy as np
import pytest
import torch

from deqbench.blocks.data import SeededDraws
from deqbench.check import tiny_task
from deqbench.equivariance import ROTATIONS, equivariance_errors, rotation_angles
from deqbench.evaluation import evaluate
from deqbench.metrics import psnr
from deqbench.samples import SAMPLE_IMAGES, residual_history, sample_reconstructions

CPU = torch.device("cpu")


class Constant(torch.nn.Module):
    """Outputs a fixed image whatever the measurements."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = image

    def forward(self, y, physics):
        return self.image.expand(len(y), *self.image.shape[1:])


class HalfStep(torch.nn.Module):
    def forward(self, x, y, physics):
        return 0.5 * x + 1.0


class Iterated(torch.nn.Module):
    """Three steps x <- x / 2 + 1 from zero, through a ``step`` submodule."""

    def __init__(self):
        super().__init__()
        self.step = HalfStep()

    def forward(self, y, physics):
        x = torch.zeros(len(y), 1, 32, 32)
        for _ in range(3):
            x = self.step(x, y, physics)
        return x


def test_rotations_are_fixed_by_the_seed_and_never_the_identity():
    assert torch.equal(rotation_angles(0), rotation_angles(0))
    assert not torch.equal(rotation_angles(0), rotation_angles(1))
    for seed in range(20):
        angles = rotation_angles(seed)
        assert len(angles) == ROTATIONS and (angles != 0).all() and len(set(angles.tolist())) == ROTATIONS


def test_a_rotation_invariant_output_scores_near_zero_and_a_fixed_pattern_does_not():
    task = tiny_task("ct")
    uniform = equivariance_errors(Constant(torch.ones(1, 1, 32, 32)), task, CPU, seed=0)
    assert len(uniform) == len(task.splits["test"]["x"])
    assert max(uniform) < 0.05  # only the interpolation at the disc's edge
    left_half = torch.zeros(1, 1, 32, 32)
    left_half[..., :16] = 1
    assert min(equivariance_errors(Constant(left_half), task, CPU, seed=0)) > 0.5


def test_residual_history_records_each_step_and_removes_its_hook():
    model = Iterated()
    with residual_history(model) as history:
        model(torch.zeros(1, 4), None)
    # x1 = 1, x2 = 1.5, x3 = 1.75: ||x_{k+1} - x_k|| / ||x_{k+1}|| = 1, 1/3, 1/7
    assert history == pytest.approx([1.0, 1 / 3, 1 / 7])
    assert not model.step._forward_hooks
    with residual_history(Constant(torch.ones(1, 1, 32, 32))) as history:
        pass
    assert history == []


def test_samples_keep_truth_input_estimate_and_histories():
    task = tiny_task("mri")
    samples = sample_reconstructions(Iterated(), task, CPU)
    count = min(SAMPLE_IMAGES, len(task.splits["test"]["x"]))
    assert samples["truth"].shape == samples["initial"].shape == (count, 2, 32, 32)
    assert samples["estimate"].shape == (count, 1, 32, 32) and samples["index"].tolist() == list(range(count))
    assert [len(h) for h in samples["residuals"]] == [3] * count


def test_evaluation_records_the_error_and_angles_for_test_images():
    task = tiny_task("ct")
    rows, summary = evaluate(Constant(torch.ones(1, 1, 32, 32)), task, CPU, warmup=0, seed=3)
    assert [row["split"] for row in rows] == ["test"] * len(task.splits["test"]["x"])
    assert all(0 <= row["equivariance_error"] < 0.05 for row in rows)
    assert summary["equivariance_rotations_deg"] == rotation_angles(3).tolist()



class NoisyConstant(torch.nn.Module):
    """A fixed image plus noise that a :class:`SeededDraws` draws anew at every call."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image, self.draws = image, SeededDraws(seed=0)

    def forward(self, y, physics):
        self.draws.new_call()
        noise = 0.1 * torch.randn(self.image.shape, generator=self.draws.generator)
        return (self.image + noise).expand(len(y), *self.image.shape[1:])


def test_a_model_with_random_draws_is_scored_on_the_mean_over_its_draws():
    """ODER-like: three draws per image; the row's PSNR is the mean of the three draws'
    PSNRs, recomputed here from the same draws, and their spread is kept."""
    task = tiny_task("ct")
    image = torch.full((1, 1, 32, 32), 0.5)
    rows, summary = evaluate(NoisyConstant(image), task, CPU, warmup=0, draws=3)
    replay = NoisyConstant(image)
    for row in [r for r in rows if r["split"] == "test"]:
        truth = task.splits["test"]["x"][row["image"], 0].numpy().astype(np.float64)
        scores = [psnr(truth, replay(torch.zeros(1), None)[0, 0].numpy().astype(np.float64)) for _ in range(3)]
        assert row["psnr"] == pytest.approx(np.mean(scores))
        assert row["psnr_draw_std"] == pytest.approx(np.std(scores, ddof=1)) and row["psnr_draw_std"] > 0
    assert summary["draws"] == 3
    deterministic, plain = evaluate(Constant(image), task, CPU, warmup=0, draws=3)
    assert "psnr_draw_std" not in deterministic[0] and plain["draws"] == 1
