"""Evaluation: test time over all draws, the model's size and the FLOPs of one reconstruction."""

from contextlib import contextmanager

import pytest
import torch

from deqbench import evaluation
from deqbench.blocks import SeededDraws
from deqbench.check import tiny_task

DRAW_SECONDS = 0.25


class Smoothing(torch.nn.Module):
    """A 3 x 3 convolution of the adjoint (sparse on CT), times a frozen scale."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.scale = torch.nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, y, physics):
        return self.scale * self.conv(physics.A_adjoint(y))


class NoisySmoothing(Smoothing):
    """The same with noise drawn at every call, reproducible from its seed (as ODER's draws)."""

    def __init__(self):
        super().__init__()
        self.draws = SeededDraws(seed=0)

    def forward(self, y, physics):
        self.draws.new_call()
        smooth = super().forward(y, physics)
        return smooth + 0.01 * torch.randn(smooth.shape, generator=self.draws.generator)


@pytest.fixture
def fixed_clock(monkeypatch):
    """Every timed reconstruction takes DRAW_SECONDS."""

    @contextmanager
    def timed(device):
        yield {"seconds": DRAW_SECONDS}

    monkeypatch.setattr(evaluation, "timed", timed)


@pytest.fixture(scope="module")
def task():
    return tiny_task("ct")


def evaluated(build, task, draws=4):
    torch.manual_seed(0)
    return evaluation.evaluate(build(), task, torch.device("cpu"), warmup=0, draws=draws)


@pytest.mark.parametrize(("build", "draws"), [(Smoothing, 1), (NoisySmoothing, 4)])
def test_time_is_that_of_all_draws(fixed_clock, task, build, draws):
    rows, summary = evaluated(build, task)
    assert summary["draws"] == draws  # a model without random draws reconstructs once
    assert all(row["seconds"] == draws * DRAW_SECONDS and row["seconds_per_draw"] == DRAW_SECONDS for row in rows)
    assert set(evaluation.image_columns()) <= set(rows[0])


def test_size_and_flops_of_one_reconstruction(task):
    """The 3 x 3 convolution of a 32 x 32 image, 2 * 9 FLOPs a pixel; the sparse adjoint is not counted."""
    _, summary = evaluated(NoisySmoothing, task)
    assert summary["parameters"] == 10  # the frozen scale included
    assert summary["flops_per_image"] == 2 * 9 * 32 * 32


def test_a_dense_product_is_counted_and_a_sparse_one_is_not():
    sparse, y = torch.randn(6, 5).to_sparse_csr(), torch.randn(5, 3)
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        sparse @ y
    assert counter.get_total_flops() == 2 * 6 * 5 * 3  # counted as dense: why reconstruction_flops maps aten.mm
    layer = torch.nn.Linear(6, 2, bias=False)
    flops = evaluation.reconstruction_flops(lambda y, matrix: layer((matrix @ y).T), y, sparse)
    assert flops == 2 * 3 * 6 * 2  # the dense layer alone


def test_evaluation_repeats_with_random_draws(task):
    first, again = evaluated(NoisySmoothing, task), evaluated(NoisySmoothing, task)
    timing = {"seconds", "seconds_per_draw"}
    assert [{k: v for k, v in row.items() if k not in timing} for row in first[0]] == \
           [{k: v for k, v in row.items() if k not in timing} for row in again[0]]
    assert first[0][0]["psnr_draw_std"] > 0
    memory = {"test_peak_memory_mb", "memory_kind"}
    assert {k: v for k, v in first[1].items() if k not in memory} == {k: v for k, v in again[1].items() if k not in memory}
