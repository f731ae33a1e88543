r"""Where the time of one training step goes, per trained method, on the default CT and MRI tasks.

    python benchmarks/step_profile.py [--steps 3]

Each method is trained by deqbench's own loop (:func:`deqbench.training.train`; PnP and RED,
which train their denoiser alone, by :func:`deqbench.denoisers.train_denoiser`) on the tasks
of ``config/config.yaml`` (CT 64 x 64, 30 views; MRI 64 x 64, acceleration 4), simulated from
a few images of their datasets, with the config's training settings (batch 4), one thread,
each method in its own process (``benchmarks/common.py``). A step is one turn of the loop,
from the end of one optimiser step to the end of the next; 1 warm-up step, then ``--steps``.

The run is made twice from the same seeds, so that both compute the same steps (checked: same
losses): first timed by the wall clock alone (``step ms``), then under ``torch.profiler``
(CPU), whose events of the measured steps split the profiled step (``profiled``):

- a recorded op's self time goes to the nearest of its enclosing ranges: ``denoiser``
  (a call of the learned network or of any of its submodules, the weight normalisation of
  the Lipschitz denoiser included; the U-Net for the U-Net), ``operator`` (a call of the
  physics' A, A^T or A^dagger, the FBP / zero-filled start: sparse matrix products for CT,
  FFTs for MRI) or ``optimiser`` (Adam's step); an autograd backward node counts where the
  forward op that made it counted (the profiler's sequence numbers), so a convolution's
  backward is ``denoiser`` even inside the implicit backward solve;
- ``other`` is the rest of the profiled step: ops in no range (the solvers' Anderson
  algebra and residuals, the loss, zeroing the gradients, the backward nodes of those) and
  the time between ops, Python's, which no op records (``traced`` is the share inside ops).

The parts are means over the measured steps, in ms and as shares of the profiled step (they
add to it exactly). ``profiled`` - ``step ms`` is the profiler's overhead (and the machine's
noise); it is a few microseconds per recorded op, so it inflates the parts made of many small
ops (operator, other) more than the convolutions. ``iters``: mean forward / backward solver
iterations of a DEQ's measured steps.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.autograd.profiler import record_function
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, THREADS, in_fresh_processes, print_provenance  # noqa: E402

from deqbench.datasets import load_spec, prepare  # noqa: E402
from deqbench.denoisers import train_denoiser  # noqa: E402
from deqbench.io import load_torch, save_torch  # noqa: E402
from deqbench.methods import build_model, load_method  # noqa: E402
from deqbench.tasks import load_task, simulate  # noqa: E402
from deqbench.training import train  # noqa: E402

TASKS = ("ct", "mri")
RUNS = (("deq-id", "sup"), ("deq-id", "ei"), ("deq-jfb", "sup"), ("oder", "sup"), ("de-prox", "sup"),
        ("unrolled", "sup"), ("unet", "sup"), ("pnp", "sup"))
LABELS = {"pnp": "pnp, red"}  # red's training step is pnp's: the same DnCNN denoiser, the same loop
IMAGES = {"train": 8, "val": 4, "test": 1}  # per split, from the task's dataset
SEED = 0
PARTS = ("denoiser", "operator", "optimiser")
BACKWARD_NODE = "autograd::engine::evaluate_function: "


def config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def simulate_task(name: str, folder: Path) -> Path:
    """The default ``name`` task simulated from the first images of its dataset, saved in ``folder``."""
    settings = config()
    task_cfg = settings["tasks"][name]
    dataset = task_cfg["dataset"]
    spec = load_spec(ROOT / "datasets" / dataset, {**settings["datasets"][dataset], "splits": IMAGES})
    images = {split: stack[:IMAGES[split]] for split, stack in prepare(spec, SEED).items()}
    path = folder / f"{name}.pt"
    save_torch(simulate(task_cfg, images, SEED), path)
    return path


def in_range(function, name: str):
    @functools.wraps(function)
    def ranged(*args, **kwargs):
        with record_function(name):
            return function(*args, **kwargs)
    return ranged


def mark_operator(physics_class: type) -> None:
    """Put every call of the physics' A, A^T and A^dagger, of any instance (ODER's subsets
    too), in an ``operator`` range."""
    for method in ("A", "A_adjoint", "A_dagger"):
        setattr(physics_class, method, in_range(getattr(physics_class, method), "operator"))


def mark_network(network: torch.nn.Module) -> None:
    """Put every call of ``network`` and of its submodules (a weight's parametrisation too) in a ``denoiser`` range."""
    open_ranges = []

    def enter(*_) -> None:
        open_ranges.append(record_function("denoiser").__enter__())

    def leave(*_) -> None:
        open_ranges.pop().__exit__(None, None, None)

    for module in network.modules():
        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)


def learned_network(model: torch.nn.Module) -> torch.nn.Module:
    """The denoiser of a DEQ / unrolled step or of a PnP method, the U-Net of the U-Net."""
    step = getattr(model, "step", model)
    return step.denoiser if hasattr(step, "denoiser") else model.net


def split_step_time(events, start: float, end: float) -> dict[str, float]:
    """Microseconds of the profiled interval (``start``, ``end``] per part (module docstring),
    and ``traced``, the sum of the self times of the ops it holds."""
    category, in_backward, made_by = {}, {}, {}  # made_by: autograd node sequence number -> category
    parts = dict.fromkeys((*PARTS, "traced"), 0.0)
    for event in sorted(events, key=lambda e: e.time_range.start):  # parents before children
        parent = event.cpu_parent
        is_node = event.name.startswith(BACKWARD_NODE)
        in_backward[event] = is_node or (parent is not None and in_backward[parent])
        if event.name in ("denoiser", "operator"):
            category[event] = event.name
        elif event.name.startswith("Optimizer.step#"):
            category[event] = "optimiser"
        elif is_node:
            category[event] = made_by.get(event.sequence_nr, "other")
        else:
            category[event] = category[parent] if parent is not None else "other"
        if not in_backward[event] and event.sequence_nr >= 0:
            made_by[event.sequence_nr] = category[event]  # the last op to start with it made the node
        if start < event.time_range.start <= end:
            parts["traced"] += event.self_cpu_time_total
            if category[event] != "other":
                parts[category[event]] += event.self_cpu_time_total
    return parts


def training_run(method, task, loss: str, steps: int, profiled: bool) -> dict:
    """Train a fresh model from the seeds for 1 + ``steps`` steps: the losses, the solvers'
    mean iterations and each measured step's wall seconds or, ``profiled``, its parts by
    the profiler's clock (``step``: the whole)."""
    torch.manual_seed(SEED)
    task.physics.noise_model.rng.manual_seed(SEED)
    model = build_model(method, task)
    mark_network(learned_network(model))
    settings = {**config()["training"], "steps": 1 + steps, "checkpoint_every": 1 + steps,
                "validation_every": 0, "fidelity_every": 0}
    ends = []
    hook = register_optimizer_step_post_hook(lambda *_: ends.append(time.perf_counter()))
    profiler = profile(activities=[ProfilerActivity.CPU]) if profiled else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as folder, profiler:
        if method.training == "denoiser":
            record, stats = train_denoiser(model, task, loss, settings, SEED, torch.device("cpu")), []
        else:
            checkpoint = Path(folder) / "checkpoint.pt"
            record = train(model, task, loss, settings, SEED, torch.device("cpu"), checkpoint)
            stats = load_torch(checkpoint)["solver_stats"][1:]
    hook.remove()
    result = {"losses": record["loss_history"], "wall_s": [b - a for a, b in zip(ends, ends[1:])],
              "iterations": [statistics.fmean(s[f"{kind}_iterations"] for s in stats)
                             for kind in ("forward", "backward") if stats and f"{kind}_iterations" in stats[0]]}
    if profiled:
        events = profiler.events()
        optimiser_ends = sorted(e.time_range.end for e in events if e.name.startswith("Optimizer.step#"))
        result["parts_s"] = [{part: us * 1e-6 for part, us in split_step_time(events, a, b).items()}
                             | {"step": (b - a) * 1e-6} for a, b in zip(optimiser_ends, optimiser_ends[1:])]
    return result


def measure(task_name: str, task_file: str, method_name: str, loss: str, steps: int) -> dict:
    """One method under one loss on one task, in a process of its own: the run timed, then profiled."""
    torch.set_num_threads(THREADS)
    settings = config()
    task = load_task(task_name, settings["tasks"][task_name], load_torch(task_file), noise_seed=SEED)
    mark_operator(type(task.physics))
    method = load_method(ROOT / "methods" / method_name, settings["hyperparameters"])
    timed = training_run(method, task, loss, steps, profiled=False)
    profiled = training_run(method, task, loss, steps, profiled=True)
    if timed["losses"] != profiled["losses"]:
        raise RuntimeError(f"{task_name} {method_name} {loss}: the profiled run computed other steps "
                           f"(losses {profiled['losses']} against {timed['losses']})")
    mean_parts = {key: statistics.fmean(step[key] for step in profiled["parts_s"]) for key in profiled["parts_s"][0]}
    return {"step_s": statistics.fmean(timed["wall_s"]), "iterations": timed["iterations"], **mean_parts}


def row(method: str, loss: str, result: dict) -> str:
    step = result["step"]
    parts = {part: result[part] for part in PARTS}
    parts["other"] = step - sum(parts.values())
    iterations = "/".join(f"{count:.0f}" for count in result["iterations"])
    line = (f"{LABELS.get(method, method):<9} {loss:<4} {iterations:>6} {result['step_s'] * 1e3:8.1f}"
            f" {step * 1e3:9.1f}")
    for seconds in parts.values():
        line += f" {seconds * 1e3:8.1f} {seconds / step:4.0%}"
    return line + f" {result['traced'] / step:7.0%}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="measured training steps per method, after a warm-up")
    steps = parser.parse_args(argv).steps
    settings = config()
    with tempfile.TemporaryDirectory() as folder:
        files = {name: str(simulate_task(name, Path(folder))) for name in TASKS}
        jobs = [(name, files[name], method, loss, steps) for name in TASKS for method, loss in RUNS]
        results = in_fresh_processes(measure, jobs)
    print_provenance()
    print(f"Training steps of deqbench's loop (pnp, red: of their denoiser), batch "
          f"{settings['training']['batch_size']}, one thread, mean of {steps} steps after a warm-up.\n"
          "step ms: unprofiled; profiled: the same steps under torch.profiler, split into the parts (ms, share);\n"
          "traced: share of the profiled step inside recorded ops; iters: DEQ forward / backward solver iterations.")
    header = (f"{'method':<9} {'loss':<4} {'iters':>6} {'step ms':>8} {'profiled':>9}"
              + "".join(f" {part:>13}" for part in (*PARTS, "other")) + f" {'traced':>7}")
    for name in TASKS:
        task_cfg = settings["tasks"][name]
        views = (f"{task_cfg['angles']} views" if task_cfg["physics"] == "tomography"
                 else f"acceleration {task_cfg['acceleration']}")
        print(f"\n{name.upper()} task, {task_cfg['image_size']} x {task_cfg['image_size']}, {views}")
        print(header)
        for (task_name, _, method, loss, _), result in zip(jobs, results):
            if task_name == name:
                print(row(method, loss, result))


if __name__ == "__main__":
    main()
