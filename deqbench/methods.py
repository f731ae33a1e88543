"""Method plug-ins: one folder ``methods/<name>/`` per leaderboard entry.

A folder holds ``method.yaml`` (validated against ``workflow/schemas/method.schema.yaml``)
and ``model.py`` defining::

    def build(hparams: dict, task: deqbench.tasks.Task) -> torch.nn.Module

The module is called as ``model(y, physics)`` and returns an image shaped like the
task's ground truth. Folders whose name starts with ``_`` or ``.`` are ignored.

Two optional keys of ``method.yaml`` change how a run is fitted: ``training: denoiser``
trains only ``model.denoiser``, as a Gaussian denoiser (:mod:`deqbench.denoisers`),
``training: none`` trains nothing; ``tuning:`` lists candidate values of hyperparameters
chosen on the validation split (:mod:`deqbench.tuning`), by a criterion that sees ground
truth only in a section whose loss does.

A profile sizes what methods share without editing their folders: config
``hyperparameters`` maps dotted paths (``denoiser.depth``) to values, set in every method
whose ``hyperparameters`` have that path (the paper profile's DnCNN-17 denoisers). Solver
settings and iteration counts (:func:`is_solver_setting`) are not shared: a shared cap
would change every method's solves at once. Config ``method_hyperparameters`` sets them,
or anything else, in one method (``{deq-id: {forward.max_iter: 100}}``).
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from deqbench.config import ConfigError, has_path, load_validated, set_path
from deqbench.provenance import config_hash, file_digest


class MethodError(RuntimeError):
    """A method's own code failed: recorded as a failed run, the benchmark goes on."""


def check_output(x_net: torch.Tensor, expected: torch.Size) -> None:
    if x_net.shape != expected:
        raise MethodError(f"model output has shape {tuple(x_net.shape)}, expected {tuple(expected)} "
                          "(the shape of the ground truth)")


@contextmanager
def method_code(doing: str):
    """Run code that calls a method's own code: a :class:`MethodError` passes through, any
    other exception (a plug-in may raise anything) becomes one that says what was being done."""
    try:
        yield
    except MethodError:
        raise
    except Exception as err:
        raise MethodError(f"{doing}: {type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class Method:
    name: str
    folder: Path
    definition: dict  # the validated method.yaml, shared hyperparameters set

    @property
    def losses(self) -> list[str]:
        return self.definition["losses"]

    @property
    def hyperparameters(self) -> dict:
        return self.definition.get("hyperparameters", {})

    @property
    def trainable(self) -> bool:
        return self.losses != ["none"] and self.training != "none"

    @property
    def training(self) -> str:
        """``end-to-end`` (under the run's loss), ``denoiser`` (:mod:`deqbench.denoisers`) or ``none``."""
        return self.definition.get("training", "end-to-end")

    @property
    def tuning(self) -> dict[str, list]:
        """Candidate values of the hyperparameters chosen on validation (:mod:`deqbench.tuning`)."""
        return self.definition.get("tuning", {})

    def supports(self, task: str) -> bool:
        return task in self.definition.get("tasks", [task])

    @property
    def sources(self) -> list[Path]:
        """Files whose edit must rerun this method's jobs."""
        return sorted(p for p in self.folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)

    def fingerprint(self) -> str:
        """Hash of every source file's name and content: changes when the method is edited."""
        return config_hash(*[(str(p.relative_to(self.folder)), file_digest(p)) for p in self.sources])


def is_solver_setting(path: str) -> bool:
    """Whether a dotted hyperparameter path is a fixed-point solver setting (``forward.*``,
    ``backward.*``) or an iteration count (``iterations``, ``inner_iterations``)."""
    keys = path.split(".")
    return keys[0] in ("forward", "backward") or keys[-1].endswith("iterations")


def check_shared(shared: dict | None) -> None:
    """Refuse a shared solver setting or iteration count, naming it."""
    for path in shared or {}:
        if is_solver_setting(path):
            raise ConfigError(f"config hyperparameters: '{path}' is a solver setting or iteration count, which a "
                              "shared value would change in every method that has it: set it per method, "
                              f"method_hyperparameters: {{<method>: {{{path}: <value>}}}}")


def set_hyperparameter(hyperparameters: dict, path: str, value: object, source: str, folder: Path) -> None:
    try:
        set_path(hyperparameters, path, value)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err} of {folder / 'method.yaml'}") from None


def load_method(folder: str | Path, shared: dict | None = None, own: dict | None = None) -> Method:
    """Validate one method folder, then set the ``shared`` hyperparameters it has (no solver
    setting: :func:`check_shared`) and its ``own`` (its entry of config
    ``method_hyperparameters``), which it must have; raises :class:`ConfigError` naming
    file and key."""
    check_shared(shared)
    folder = Path(folder)
    definition = load_validated(folder / "method.yaml", "method")
    if definition["losses"] == ["none"] and "tuning" in definition:
        raise ConfigError(f"{folder / 'method.yaml'}: key 'tuning': losses [none] is one run shared by every "
                          "section, which no tuning criterion fits (validation PSNR sees ground truth, the ei "
                          "sections may not): list the sections, losses: [sup, ei], with training: none")
    if not (folder / "model.py").is_file():
        raise ConfigError(f"{folder / 'model.py'}: file not found")
    hyperparameters = definition.get("hyperparameters", {})
    for path, value in (shared or {}).items():
        if has_path(hyperparameters, path):
            set_hyperparameter(hyperparameters, path, value, "config hyperparameters", folder)
    for path, value in (own or {}).items():
        set_hyperparameter(hyperparameters, path, value, f"config method_hyperparameters.{folder.name}", folder)
    return Method(name=folder.name, folder=folder, definition=definition)


def discover(methods_dir: str | Path, shared: dict | None = None,
             per_method: dict[str, dict] | None = None) -> tuple[dict[str, Method], dict[str, str]]:
    """All method folders, with the config's ``shared`` hyperparameters and each one's entry
    of ``per_method`` set (:func:`load_method`): ``(valid methods, {invalid folder: reason})``.
    Raises :class:`ConfigError` for a shared solver setting, a shared path that no valid
    method has (a misspelt key would otherwise change nothing), and a ``per_method`` entry
    of a folder that is missing or not valid (a path it lacks among the reasons)."""
    check_shared(shared)
    per_method = per_method or {}
    valid, invalid = {}, {}
    for folder in sorted(Path(methods_dir).iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        try:
            valid[folder.name] = load_method(folder, shared, per_method.get(folder.name))
        except ConfigError as err:
            invalid[folder.name] = str(err)
    for path in shared or {}:
        if not any(has_path(m.hyperparameters, path) for m in valid.values()):
            raise ConfigError(f"config hyperparameters: '{path}' is a hyperparameter of no method "
                              f"in {methods_dir}")
    for name in per_method:
        if name not in valid:
            raise ConfigError(invalid.get(name, f"config method_hyperparameters: '{name}' is no method folder "
                                                f"in {methods_dir}"))
    return valid, invalid


def import_model(folder: str | Path) -> ModuleType:
    """The module of a method folder's ``model.py``."""
    path = Path(folder) / "model.py"
    module_spec = importlib.util.spec_from_file_location(f"deqbench_method_{Path(folder).name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def build_model(method: Method, task, device: str | torch.device = "cpu",
                chosen: dict | None = None) -> torch.nn.Module:
    """Import ``model.py`` and call its ``build``; any failure is a :class:`MethodError`.

    ``chosen``: values of the ``tuning`` hyperparameters, each at its first candidate
    when absent; they override ``hyperparameters``.
    """
    path = method.folder / "model.py"
    with method_code(f"{path}: build failed"):
        first = {name: values[0] for name, values in method.tuning.items()}
        model = import_model(method.folder).build({**method.hyperparameters, **first, **(chosen or {})}, task)
    if not isinstance(model, torch.nn.Module):
        raise MethodError(f"{path}: build returned {type(model).__name__}, not a torch.nn.Module")
    return model.to(device)
