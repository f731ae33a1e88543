# Checks of the config against the folders, method discovery, the list of runs and the
# input functions of the rules.
from pathlib import Path

from deqbench.config import ConfigError, check_method_tasks, training_settings
from deqbench.methods import discover
from deqbench.provenance import PACKAGE, code_files

CONFIG_TASKS = list(config["tasks"])  # every task, also those that run_tasks leaves out
if "run_tasks" in config:
    unknown = sorted(set(config["run_tasks"]) - set(config["tasks"]))
    if unknown:
        raise ValueError(f"config 'run_tasks' names unknown tasks: {unknown}")
    config["tasks"] = {name: cfg for name, cfg in config["tasks"].items() if name in config["run_tasks"]}
for _task, _cfg in config["tasks"].items():
    for _key in ("dataset", "ood_dataset"):
        if _key in _cfg and not Path(f"datasets/{_cfg[_key]}/dataset.yaml").is_file():
            raise ValueError(f"config tasks.{_task}.{_key}: no dataset folder 'datasets/{_cfg[_key]}' "
                             "with a dataset.yaml")

METHODS, INVALID_METHODS = discover(config["methods_dir"], config["hyperparameters"], config["method_hyperparameters"])
if "methods" in config:
    unknown = sorted(set(config["methods"]) - set(METHODS) - set(INVALID_METHODS))
    if unknown:
        raise ValueError(f"config 'methods' names unknown method folders: {unknown}")
    METHODS = {name: m for name, m in METHODS.items() if name in config["methods"]}
for _name, _method in list(METHODS.items()):  # a misspelt task: the folder is invalid, the others run
    try:
        check_method_tasks(_method.definition, CONFIG_TASKS, _method.folder / "method.yaml")
    except ConfigError as _err:
        INVALID_METHODS[_name] = str(_err)
        del METHODS[_name]
for _name, _reason in INVALID_METHODS.items():
    logger.warning(f"method '{_name}' is left out of this run: {_reason}")

RUNS = [
    (task, method.name, loss, seed)
    for task in config["tasks"]
    for method in METHODS.values()
    if method.supports(task)
    for loss in method.losses
    for seed in (config["seeds"] if method.trainable else config["seeds"][:1])  # untrained: once
]
RUN_DIR = "results/runs/{task}/{method}/{loss}/seed{seed}"
RUN_LOG = "{task}/{method}/{loss}/seed{seed}"
ORACLES = [(task, "nearest-train", "none", config["seed"]) for task in config["tasks"]]  # shown, never ranked


def run_file(name, **wildcards):
    """``name`` (model.pt, run.json, ...) in the folder of the run that ``wildcards`` name."""
    return f"{RUN_DIR}/{name}".format(**wildcards)


def run_files(name):
    """``name`` of every run and oracle row."""
    return [run_file(name, task=t, method=m, loss=l, seed=s) for t, m, l, s in RUNS + ORACLES]


wildcard_constraints:
    task="|".join(config["tasks"]) or "$^",
    method="|".join(METHODS) or "$^",
    loss="sup|ei|none",
    seed=r"\d+",
    dataset="[A-Za-z0-9_-]+",


def package_inputs(paths):
    """Package modules named as inputs: relative to the working directory when the package
    lies under it, so that results moved together with it (`cp -a`) keep their recorded
    inputs; absolute when it is installed elsewhere, where moving the results leaves it."""
    cwd = Path.cwd().resolve()
    return [str(p.relative_to(cwd)) if p.is_relative_to(cwd) else str(p) for p in paths]


RESULT_CODE = package_inputs(code_files())


def run_sources(wildcards):
    """The method folder's files and the package code that computes results: an edit of
    either reruns the run (deqbench.provenance)."""
    return [*map(str, METHODS[wildcards.method].sources), *RESULT_CODE]


def task_inputs(wildcards):
    """The task's dataset and, where it has one, its out-of-distribution dataset."""
    task = config["tasks"][wildcards.task]
    inputs = {"data": f"results/data/{task['dataset']}.pt"}
    if "ood_dataset" in task:
        inputs["ood_data"] = f"results/data/{task['ood_dataset']}.pt"
    return inputs


def trained_inputs(wildcards):
    """The model and its training record, for a method that trains."""
    if not METHODS[wildcards.method].trainable:
        return {}
    return {"model": run_file("model.pt", **wildcards), "record": run_file("train.json", **wildcards)}


def tuned_inputs(wildcards):
    """The tuned settings, for a method with `tuning:`."""
    if not METHODS[wildcards.method].tuning:
        return {}
    return {"tuning": run_file("tuning.json", **wildcards)}


def run_settings(wildcards):
    """Everything a run depends on besides its input files: changing it reruns the job."""
    return {
        "task_name": wildcards.task,
        "task_cfg": config["tasks"][wildcards.task],
        "method_dir": str(METHODS[wildcards.method].folder),
        "loss": wildcards.loss,
        "settings": training_settings(config["training"], wildcards.loss),
        "seed": int(wildcards.seed),
        "device_name": config["device"],
        "shared_hyperparameters": config["hyperparameters"],
        "method_hyperparameters": config["method_hyperparameters"].get(wildcards.method, {}),
    }
