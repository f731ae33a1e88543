"""Check method folders before a full run: deqbench-check methods/<name> [...]

The folder loads (method.yaml validates, names only tasks of the configs in config/, and
model.py imports and defines build). Then, for every task the method supports, on a tiny
simulated problem: build(hparams, task) returns a module, its output has the ground
truth's shape, the same seed gives the same output twice, and two training steps under
each declared loss run forward and backward with finite losses.

Each problem is one line naming the task, the stage (load, build, forward, output,
training) and the cause; every folder is checked, and the exit status is 1 when any
has a problem.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import torch

from deqbench.config import ConfigError, check_method_tasks, config_task_names
from deqbench.datasets import ellipse_phantom, split_rng
from deqbench.methods import Method, MethodError, build_model, check_output, import_model, load_method
from deqbench.tasks import Task, load_task, simulate

TINY_TASKS = {
    "ct": {"physics": "tomography", "image_size": 32, "angles": 12, "noise_sigma": 0.01},
    "mri": {"physics": "mri", "image_size": 32, "acceleration": 4, "center_fraction": 0.08, "noise_sigma": 0.01},
}
TINY_TRAINING = {"steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 2,
                 "ei_weight": 1.0, "ei_rotation_multiples": 1.0, "denoiser_sigma": 0.05}


class StageFailed(Exception):
    """A stage of the check failed; the message names the stage and the cause."""


def cause(err: Exception, folder: Path) -> str:
    """What went wrong, on one line: the benchmark's own message for its errors; for any
    other exception (also one that a :class:`MethodError` wraps), its type, message and
    the line of the method's code that raised it."""
    if isinstance(err, MethodError) and err.__cause__ is not None:
        err = err.__cause__
    elif isinstance(err, (ConfigError, MethodError)):
        return " ".join(str(err).split())
    if isinstance(err, SyntaxError):
        return f"SyntaxError: {err.msg} ({err.filename}, line {err.lineno})"
    own = [frame for frame in traceback.extract_tb(err.__traceback__)
           if Path(frame.filename).resolve().is_relative_to(folder.resolve())]
    where = f" ({own[-1].filename}, line {own[-1].lineno})" if own else ""
    return " ".join(f"{type(err).__name__}: {err}".split()) + where


@contextlib.contextmanager
def stage(name: str, folder: Path):
    """Turn any exception raised in the stage ``name`` into a :class:`StageFailed`."""
    try:
        yield
    except Exception as err:
        raise StageFailed(f"{name}: {cause(err, folder)}") from err


def tiny_task(name: str, seed: int = 0) -> Task:
    cfg = TINY_TASKS[name]
    rng = split_rng(seed, "check")
    images = torch.from_numpy(np.stack([ellipse_phantom(rng, cfg["image_size"]) for _ in range(4)]))
    data = simulate(cfg, {"train": images, "val": images[:2], "test": images[:2]}, seed)
    return load_task(name, cfg, data, noise_seed=seed)


def output_once(method: Method, task_name: str, seed: int = 0) -> torch.Tensor:
    """The output of a fresh build on a fresh tiny task, both seeded with ``seed``."""
    torch.manual_seed(seed)
    task = tiny_task(task_name, seed)
    with stage("build", method.folder):
        model = build_model(method, task).eval()
    with stage("forward", method.folder), torch.no_grad():
        return model(task.splits["test"]["y"], task.physics)


def load(folder: Path) -> Method:
    """The method of ``folder``, checked as far as it can be without building it."""
    with stage("load", folder):
        try:
            method = load_method(folder)
        except ConfigError as err:
            raise ConfigError(f"{err} (see workflow/schemas/method.schema.yaml)") from None
        check_method_tasks(method.definition, config_task_names(), folder / "method.yaml")
        if not callable(getattr(import_model(folder), "build", None)):
            raise MethodError(f"{folder / 'model.py'}: defines no function build(hparams, task)")
    return method


def check_task(method: Method, task_name: str) -> list[str]:
    """Problems of ``method`` on the tiny ``task_name``."""
    from deqbench.training import train  # imported late: torch set-up cost

    task = tiny_task(task_name)
    expected = task.splits["test"]["x"].shape
    try:
        first = output_once(method, task_name)
        with stage("output", method.folder):
            check_output(first, expected)
        second = output_once(method, task_name)
    except StageFailed as err:
        return [f"[{task_name}] {err}"]
    problems = [] if torch.equal(first, second) else [
        f"[{task_name}] output: two builds with the same seed give different outputs: "
        "draw randomness from torch's seeded RNG or a seeded torch.Generator"]
    for loss in (method.losses if method.trainable and method.training == "end-to-end" else []):
        try:
            with stage("training", method.folder), tempfile.TemporaryDirectory() as scratch, \
                    contextlib.redirect_stderr(io.StringIO()):  # progress bars
                train(build_model(method, task), task, loss, TINY_TRAINING, 0, torch.device("cpu"),
                      Path(scratch) / "checkpoint.pt")
        except StageFailed as err:
            problems.append(f"[{task_name}, {loss}] {err}")
    return problems


def check(folder: str | Path) -> list[str]:
    """Problems found in a method folder, as messages that say what to fix (empty: all good)."""
    folder = Path(folder)
    try:
        method = load(folder)
    except StageFailed as err:
        return [str(err)]
    tasks = [t for t in TINY_TASKS if method.supports(t)]
    if not tasks:
        return [f"load: {folder / 'method.yaml'}: 'tasks' names none of the tasks the check simulates "
                f"({', '.join(TINY_TASKS)})"]
    return [problem for task_name in tasks for problem in check_task(method, task_name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deqbench-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="method folders, e.g. methods/my-method")
    args = parser.parse_args(argv)
    failed = 0
    for folder in args.folders:
        problems = check(folder)
        print(f"{folder}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"  - {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
