r"""Seeded, resumable training of one method on one task under one loss.

Everything random draws from generators seeded from the run seed (batch order, loss
transforms, the re-measurement noise, torch's global RNG), and their states are part
of the checkpoint, so a resumed run ends with the same weights as an uninterrupted one
on CPU. Checkpoints are written atomically every ``checkpoint_every`` steps.

Every ``validation_every`` steps (and at the last) the mean validation PSNR is recorded,
untimed, in batches of the training batch size: the learning curve. It is for the reader,
and the leaderboard reads off it whether a run had converged (the trend over its last
quarter, :func:`deqbench.leaderboard.last_quarter_trend`).

With ``early_stopping: {patience, min_delta_db}`` the run also records, at every point, a
stopping criterion (:func:`stopping_criterion`: the validation PSNR under ``sup``; under
``ei`` a score from the validation measurements alone) and stops, ``steps`` then being a
cap, once ``patience`` points in a row have not improved on the best by ``min_delta_db``
(:func:`plateau`); it ends with the weights of its best point.

``lr_schedule: cosine`` anneals the learning rate over the step cap (torch's
``CosineAnnealingLR``, :math:`\eta_t = \tfrac{\eta_0}{2}(1 + \cos(\pi t / T))`, ``T = steps``),
so that a run settles within its budget instead of gaining at a slowly falling rate to
any cap; the default ``constant`` keeps ``lr``. Under ``cosine`` the cap shapes every step,
so it is part of the run's identity (:func:`deqbench.runs.run_identity`).
"""

from __future__ import annotations

import math
import statistics
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from deqbench import fidelity
from deqbench.tuning import mean_psnr
from deqbench.io import load_torch, save_torch
from deqbench.losses import build_loss, needs_ground_truth, total_loss
from deqbench.measure import PeakMemory, timed
from deqbench.methods import MethodError, check_output, method_code
from deqbench.blocks.solvers import hit_cap
from deqbench.tasks import Task


def seed_everything(seed: int, device: torch.device) -> None:
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)


def solver_summary(per_step: list[dict[str, float]]) -> dict:
    """Mean over training steps of each fixed-point statistic a model exposes as
    ``model.stats`` (``fp_<key>``), ``fixed_point_warning``, the number of steps
    whose solve hit its iteration cap, and ``backward_capped_steps``, those whose
    implicit backward solve did; empty for models without statistics. A loss that
    calls the model twice (EI) reports the latest forward and backward solve of a step."""
    if not any(per_step):
        return {}
    keys = sorted({key for stats in per_step for key in stats})
    summary = {f"fp_{key}": statistics.fmean(s[key] for s in per_step if key in s) for key in keys}
    summary["fixed_point_warning"] = sum(hit_cap(stats) for stats in per_step)
    summary["backward_capped_steps"] = sum(stats.get("backward_capped", 0) > 0 for stats in per_step)
    if summary["fixed_point_warning"]:
        warnings.warn(f"{summary['fixed_point_warning']} of {len(per_step)} training steps hit a "
                      "fixed-point iteration cap: the map may not be contractive", stacklevel=2)
    return summary


def cap_shapes_schedule(settings: dict) -> bool:
    """Whether the step cap sets the learning rate of every step (``lr_schedule: cosine``),
    so that a run with a raised cap cannot continue a finished one."""
    return settings.get("lr_schedule", "constant") != "constant"


def fidelity_summary(measured: list[dict]) -> dict:
    """The fidelity measurements (:mod:`deqbench.fidelity`), every one as measured: the
    protocol's gates read their statistics off them
    (:func:`deqbench.leaderboard.fidelity_statistics`), so that a change of the gates
    needs no retraining."""
    return {"fidelity": measured} if measured else {}


@torch.no_grad()
def stopping_criterion(model: torch.nn.Module, task: Task, loss_name: str, settings: dict,
                       device: torch.device) -> float:
    """Higher is better. Under a loss that sees ground truth, the validation PSNR; otherwise
    :math:`-10 \\log_{10}` of the run's loss on the validation measurements alone, its random
    transforms and re-measurement noise drawn from a fixed seed (so that the criterion repeats
    exactly) and the training's random streams left as they were."""
    if needs_ground_truth(loss_name):
        return mean_psnr(model, task.splits["val"], task.physics, device, settings["batch_size"])
    noise, torch_state = task.physics.noise_model, torch.get_rng_state()
    state = noise.rng.get_state()
    noise.rng.manual_seed(0)
    terms = build_loss(loss_name, settings, torch.Generator(device).manual_seed(0))
    ys = task.splits["val"]["y"].to(device).split(settings["batch_size"])
    loss = sum(len(y) * total_loss(terms, model(y, task.physics), None, y, task.physics, model).item() for y in ys)
    noise.rng.set_state(state)
    torch.set_rng_state(torch_state)
    return -10 * math.log10(loss / sum(len(y) for y in ys))


def plateau(curve: list[dict], patience: int, min_delta_db: float) -> tuple[int, bool]:
    """The index of the best point of the learning curve (the last one that beat every earlier
    ``criterion`` by ``min_delta_db``) and whether ``patience`` points have followed it."""
    best = 0
    for index, point in enumerate(curve[1:], start=1):
        if point["criterion"] > curve[best]["criterion"] + min_delta_db:
            best = index
    return best, len(curve) - 1 - best >= patience


def curve_summary(curve: list[dict]) -> dict:
    """The learning curve and its last validation PSNR (the leaderboard reads its trend)."""
    if not curve:
        return {}
    return {"validation": curve, "val_psnr_final": curve[-1]["val_psnr"]}


def train(model: torch.nn.Module, task: Task, loss_name: str, settings: dict, seed: int,
          device: torch.device, checkpoint: Path, identity: dict | None = None) -> dict:
    """Train ``model`` in place and return the training record.

    ``settings``: ``steps``, ``batch_size``, ``lr``, ``checkpoint_every``, ``ei_weight``,
    ``ei_rotation_multiples`` and optionally ``time_budget_s``, ``fidelity_every``
    (DEQs: measure the gradient's fidelity every that many steps and at the last,
    :mod:`deqbench.fidelity`, untimed), ``validation_every`` (the learning curve,
    module docstring) and ``early_stopping`` (module docstring). ``identity`` is stored in
    the checkpoint: a checkpoint of another identity (other code or config), or past a
    lowered step cap, is deleted rather than resumed from. A method's own
    failure (exception, wrong output shape, non-finite loss, time budget exceeded) raises
    :class:`MethodError`.
    """
    seed_everything(seed, device)
    data = task.splits["train"]
    y_all = data["y"].to(device)
    x_all = data["x"].to(device) if needs_ground_truth(loss_name) else None
    batches = torch.Generator().manual_seed(seed)
    transforms = torch.Generator(device).manual_seed(seed + 1)
    terms = build_loss(loss_name, settings, transforms)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["steps"])
                if cap_shapes_schedule(settings) else None)

    def generators() -> dict[str, torch.Generator]:
        # deepinv's noise model swaps its generator object on every call: look it up each time.
        return {"batches": batches, "transforms": transforms, "noise": task.physics.noise_model.rng}

    start, history, step_times, step_cpu_times, solver_stats, measured, curve, best = 0, [], [], [], [], [], [], None
    fidelity_every, validation_every = settings.get("fidelity_every", 0), settings.get("validation_every", 0)
    stopping, stopped = settings.get("early_stopping"), False
    if stopping and not validation_every:
        raise MethodError("early_stopping needs validation points: set training.validation_every")
    state = load_torch(checkpoint, map_location=device) if checkpoint.exists() else None
    if state is not None and (state.get("identity") != identity or state["step"] > settings["steps"]):
        checkpoint.unlink()
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        for name, generator in generators().items():
            generator.set_state(state["rng"][name])
        torch.set_rng_state(state["rng"]["torch"])
        start, history, step_times = state["step"], state["history"], state["step_times"]
        step_cpu_times = state["step_cpu_times"]
        solver_stats, measured, curve = state["solver_stats"], state["fidelity"], state["validation"]
        best = state.get("best")
        stopped = bool(stopping and curve) and plateau(curve, **stopping)[1]

    model.train()
    with PeakMemory(device) as memory, timed(device) as wall:
        last = start if stopped else settings["steps"]
        for step in tqdm(range(start, last), initial=start, total=settings["steps"], desc="train", file=sys.stderr,
                         mininterval=5):
            index = torch.randint(len(y_all), (settings["batch_size"],), generator=batches)
            y = y_all[index]
            x = x_all[index] if x_all is not None else None

            def step_loss() -> torch.Tensor:
                x_net = model(y, task.physics)
                check_output(x_net, torch.Size((len(y), task.channels, task.image_size, task.image_size)))
                return total_loss(terms, x_net, x, y, task.physics, model)

            due = (fidelity_every and (step % fidelity_every == 0 or step == settings["steps"] - 1)
                   and fidelity.measurable(model))
            before = fidelity.snapshot(model, generators()) if due else None
            with timed(device) as compute:
                optimizer.zero_grad(set_to_none=True)
                with method_code(f"step {step}"):
                    loss = step_loss()
                    loss.backward()
                if not math.isfinite(loss.item()):
                    raise MethodError(f"step {step}: loss is {loss.item()} (diverged)")
            if due:  # not timed: it replays the step with tight solves
                with method_code(f"step {step}: gradient fidelity"):
                    measured.append({"step": step, **fidelity.measure(model, step_loss, before, generators,
                                                                      y, task.physics)})
            with timed(device) as update:
                optimizer.step()
                if schedule is not None:
                    schedule.step()
            step_times.append(compute["seconds"] + update["seconds"])
            step_cpu_times.append(compute["cpu_seconds"] + update["cpu_seconds"])
            if sum(step_times) > settings.get("time_budget_s", math.inf):
                raise MethodError(f"step {step}: training exceeded its budget of {settings['time_budget_s']} s")
            history.append(loss.item())
            solver_stats.append(dict(getattr(model, "stats", None) or {}))
            done = step + 1
            if validation_every and (done % validation_every == 0 or done == settings["steps"]):
                model.eval()
                with method_code(f"step {step}: validation"):
                    curve.append({"step": done, "val_psnr": mean_psnr(model, task.splits["val"], task.physics,
                                                                      device, settings["batch_size"])})
                    if stopping:
                        curve[-1]["criterion"] = stopping_criterion(model, task, loss_name, settings, device)
                model.train()
                if stopping:
                    index, stopped = plateau(curve, **stopping)
                    if index == len(curve) - 1:
                        best = {"step": done, "model": {k: v.clone() for k, v in model.state_dict().items()}}
            if done % settings["checkpoint_every"] == 0 or done == settings["steps"] or stopped:
                save_torch({
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict() if schedule is not None else None,
                    "rng": {**{n: g.get_state() for n, g in generators().items()}, "torch": torch.get_rng_state()},
                    "step": done, "history": history, "step_times": step_times, "step_cpu_times": step_cpu_times,
                    "identity": identity,
                    "solver_stats": solver_stats, "fidelity": measured, "validation": curve, "best": best,
                }, checkpoint)
            if stopped:
                break
    if best is not None:
        model.load_state_dict(best["model"])
    model.eval()
    return {
        "steps": len(history),
        "max_steps": settings["steps"],
        "stopped_early": stopped,
        "best_step": best["step"] if best else None,
        "batch_size": settings["batch_size"],
        "lr": settings["lr"],
        "lr_schedule": settings.get("lr_schedule", "constant"),
        "resumed_from_step": start,
        "final_loss": statistics.fmean(history[-10:]) if history else float("nan"),
        "loss_history": history,
        "train_time_s": sum(step_times),
        "step_time_median_s": statistics.median(step_times) if step_times else float("nan"),
        "step_cpu_time_median_s": statistics.median(step_cpu_times) if step_cpu_times else float("nan"),
        "train_wall_s_this_process": wall["seconds"],
        "train_peak_memory_mb": memory.peak_mb,
        "memory_kind": memory.kind,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **solver_summary(solver_stats),
        **fidelity_summary(measured),
        **curve_summary(curve),
    }
