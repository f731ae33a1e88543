"""Per-image quality (every metric of :data:`deqbench.metrics.METRICS`), test time and
memory of a reconstruction method.

Test time is measured per image (batch of one) after ``warmup`` untimed passes, with
CUDA synchronisation on GPU. A model with random draws (any
:class:`deqbench.blocks.SeededDraws`, e.g. ODER's measurement subsets) reconstructs each
image ``draws`` times: its scores are the means over the draws, the spread between
draws is kept as ``psnr_draw_std``, its ``seconds`` are those of all draws together (the
cost of the score it gets), ``seconds_per_draw`` = ``seconds`` / ``draws`` beside them, and
its fixed-point statistics are the first draw's.

The first test images also get their ``equivariance_error`` (:mod:`deqbench.equivariance`),
computed after the timed and memory-measured passes. The summary gives the model's size,
``parameters`` (all, trainable or not), and the cost of one reconstruction (one draw) of
the first test image, ``flops_per_image`` (:func:`reconstruction_flops`), counted last.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from deqbench.blocks.data import draws_at_random
from deqbench.equivariance import equivariance_errors, rotation_angles
from deqbench.measure import PeakMemory, timed
from deqbench.methods import check_output
from deqbench.metrics import METRICS, RANKED, score_all, scorable
from deqbench.tasks import Task

SCORED_SPLITS = ("test", "ood")


def image_columns() -> list[str]:
    """The columns of every per-image row."""
    return ["split", "image", *METRICS, "seconds", "seconds_per_draw"]


def dense_product_flops(a: torch.Tensor, b: torch.Tensor, *args, out_val=None, **kwargs) -> int:
    """``aten.mm``'s 2mkn, 0 where an operand is sparse: FlopCounterMode counts a CSR product
    (CT's projector, :class:`deqbench.tasks.MatrixTomography`) as if it were dense."""
    if a.layout != torch.strided or b.layout != torch.strided:
        return 0
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


dense_product_flops._get_raw = True  # FlopCounterMode passes it the tensors, not their shapes


def reconstruction_flops(model: torch.nn.Module, y: torch.Tensor, physics) -> int:
    """Floating point operations of ``model(y, physics)`` as FlopCounterMode counts them:
    dense matrix products and convolutions (the denoisers, dense operators), not sparse
    products (CT's projector), FFTs (MRI) nor elementwise operations."""
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.mm: dense_product_flops}) as counter:
        model(y, physics)
    return counter.get_total_flops()


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, device: torch.device, warmup: int = 1,
             seed: int = 0, draws: int = 1) -> tuple[list[dict], dict]:
    """Score ``model`` on the test and out-of-distribution splits.

    Returns one row per image (split, index, every metric, seconds of all draws, seconds per
    draw, any fixed-point statistics the model exposes as ``model.stats``, for a model with
    random draws the draw-to-draw PSNR standard deviation and, for the first test images,
    the equivariance error under rotations drawn from ``seed``) and the evaluation summary
    (peak memory over the whole evaluation, the rotation angles, the draws per image, the
    parameter count and the FLOPs of one reconstruction of the first test image).
    """
    model.eval()
    draws = draws if draws_at_random(model) else 1
    rows = []
    with PeakMemory(device) as memory:
        for split in SCORED_SPLITS:
            if split not in task.splits:
                continue
            xs, ys = task.splits[split]["x"], task.splits[split]["y"].to(device)
            for _ in range(min(warmup, len(ys))):
                model(ys[:1], task.physics)
            for index in range(len(ys)):
                truth = scorable(xs[index:index + 1])[0]
                scores, seconds = [], 0.0
                for draw in range(draws):
                    with timed(device) as clock:
                        estimate = model(ys[index:index + 1], task.physics)
                    seconds += clock["seconds"]
                    check_output(estimate, torch.Size((1, *xs.shape[1:])))
                    scores.append(score_all(truth, scorable(estimate)[0]))
                    if draw == 0:
                        stats = {f"fp_{k}": v for k, v in (getattr(model, "stats", None) or {}).items()}
                ranked = [score[RANKED] for score in scores]
                rows.append({"split": split, "image": index,
                             **{name: float(np.mean([score[name] for score in scores])) for name in METRICS},
                             "seconds": seconds, "seconds_per_draw": seconds / draws, **stats,
                             **({f"{RANKED}_draw_std": float(np.std(ranked, ddof=1))} if draws > 1 else {})})
    errors = equivariance_errors(model, task, device, seed)
    for row in rows:
        if row["split"] == "test" and row["image"] < len(errors):
            row["equivariance_error"] = errors[row["image"]]
    return rows, {"test_peak_memory_mb": memory.peak_mb, "memory_kind": memory.kind,
                  "equivariance_rotations_deg": rotation_angles(seed).tolist(), "draws": draws,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "flops_per_image": reconstruction_flops(model, task.splits["test"]["y"][:1].to(device), task.physics)}


def nearest_training_rows(task: Task) -> list[dict]:
    """The memorisation ceiling: for each test and out-of-distribution image, the training
    image closest to its ground truth (lowest squared error), scored like a reconstruction.
    An oracle, since it looks at the ground truth: a learned row near it could be recalling
    the training set rather than reconstructing."""
    train = scorable(task.splits["train"]["x"])
    rows = []
    for split in SCORED_SPLITS:
        if split not in task.splits:
            continue
        for index, truth in enumerate(scorable(task.splits[split]["x"])):
            nearest = int(np.argmin(((train - truth) ** 2).sum(axis=(1, 2))))
            rows.append({"split": split, "image": index, **score_all(truth, train[nearest]),
                         "seconds": float("nan"), "seconds_per_draw": float("nan"), "nearest_train_image": nearest})
    return rows

