"""Scaling studies: the cost of a training step as one quantity grows.

A study (config ``scaling.studies.<name>``) sweeps integer ``values`` for a few methods
on one task. Each method says where the value goes as dotted paths (``sweep``):
``task.<key>`` (``task.angles``: the number of CT views) or
``hyperparameters.<key>[.<key>...]`` (``hyperparameters.iterations`` of the unrolled
method, ``hyperparameters.forward.max_iter`` of a DEQ), and optionally ``fixed`` values
set the same way (``hyperparameters.forward.tol: 0``, so that a DEQ runs exactly
``max_iter`` iterations). Every path must name an existing key, so a misspelt one stops
the workflow with its name.

Each point is its own job and process: ``scaling.steps`` training steps of batch
``scaling.batch_size`` on freshly simulated training images, measured by
:func:`deqbench.training.train` (median step time, peak memory of the steps).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd

from deqbench.config import ConfigError, set_path
from deqbench.io import read_json, write_bytes_atomic

RECORD_COLUMNS = ["study", "method", "value", "status", "reason", "step_time_median_s",
                  "train_peak_memory_mb", "memory_kind"]


def point_settings(study: dict, method: str, value: int, task_cfg: dict,
                   hyperparameters: dict) -> tuple[dict, dict]:
    """The task config and method hyperparameters of one point of ``study``."""
    target = {"task": copy.deepcopy(task_cfg), "hyperparameters": copy.deepcopy(hyperparameters)}
    placement = study["methods"][method]  # the paths the value goes to, and fixed ones
    for path, setting in {**placement.get("fixed", {}), **dict.fromkeys(placement["sweep"], value)}.items():
        try:
            set_path(target, path, setting)
        except ConfigError as err:
            raise ConfigError(f"config scaling: method '{method}': {err}") from None
    return target["task"], target["hyperparameters"]


def study_points(studies: dict, hyperparameters: dict[str, dict], tasks: dict,
                 defined_tasks: list[str] | None = None) -> tuple[list[tuple], list[str]]:
    """Every ``(study, method, value)`` whose method and task are available, checked against
    its settings, and a message for each study or method left out because it is not.

    ``hyperparameters`` maps each available method folder to its hyperparameters; ``tasks``
    are this run's tasks, ``defined_tasks`` every task of the config (``run_tasks`` may
    select fewer: a study of a defined task left out is skipped, an undefined one is an error).
    """
    points, left_out = [], []
    for name, study in studies.items():
        if study["task"] not in tasks:
            if study["task"] in (defined_tasks or []):
                left_out.append(f"scaling study '{name}': task '{study['task']}' is not among this run's "
                                "tasks (config 'run_tasks'); it is left out")
                continue
            raise ConfigError(f"config scaling.studies.{name}.task: no task '{study['task']}' in config 'tasks'")
        for method in study["methods"]:
            if method not in hyperparameters:
                left_out.append(f"scaling study '{name}': method '{method}' is not among this run's methods "
                                "(methods/ or config 'methods'); it is left out")
                continue
            for value in study["values"]:
                point_settings(study, method, value, tasks[study["task"]], hyperparameters[method])
                points.append((name, method, value))
    return points, left_out


def summarise(records: list[dict]) -> pd.DataFrame:
    """One row per measured point, solver statistics (``fp_*``) included."""
    table = pd.DataFrame(records)
    extra = sorted(c for c in table.columns if c.startswith("fp_"))
    return table.reindex(columns=RECORD_COLUMNS + extra).sort_values(["study", "method", "value"],
                                                                     ignore_index=True)


def write_summary(point_files: list[str], studies: dict[str, dict], out_csv: str, figures_dir: str) -> None:
    """Gather the points of every study into one table and one figure per study."""
    from deqbench import figures  # the plotting stack for this job only: every run job imports this module

    table = summarise([read_json(path) for path in point_files])
    write_bytes_atomic(table.to_csv(index=False).encode(), out_csv)
    for name, study in studies.items():
        figures.scaling_figure(table[table["study"] == name], study.get("title", name), study["axis"],
                               Path(figures_dir) / name)
