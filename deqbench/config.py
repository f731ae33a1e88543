"""Loading and validating the benchmark's YAML files.

Every YAML file is parsed with ``yaml.safe_load`` and checked against a JSON schema
in ``workflow/schemas/``; a failure raises :class:`ConfigError` naming the file and
the key at fault.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "workflow" / "schemas"


class ConfigError(ValueError):
    """A YAML file is missing, malformed or does not match its schema."""


def load_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping safely; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(data: dict, schema_name: str, source: str | Path) -> dict:
    """Validate ``data`` against ``workflow/schemas/<schema_name>.schema.yaml``.

    Defaults declared in the schema are not filled in: callers read them explicitly.
    """
    schema = load_yaml(SCHEMAS / f"{schema_name}.schema.yaml")
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        key = ".".join(str(p) for p in first.absolute_path) or "<top level>"
        raise ConfigError(f"{source}: key '{key}': {first.message}")
    return data


def load_validated(path: str | Path, schema_name: str) -> dict:
    """Load a YAML file and validate it against a named schema."""
    return validate(load_yaml(path), schema_name, path)


def has_path(settings: dict, path: str) -> bool:
    """Whether ``settings[a][b]...`` exists for the dotted ``path`` ``a.b...``."""
    node = settings
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def set_path(settings: dict, path: str, value: object) -> None:
    """Set the single setting ``settings[a][b]...`` for the dotted ``path`` ``a.b...``, in
    place; it must exist and not be a group of settings."""
    if not has_path(settings, path):
        raise ConfigError(f"'{path}' names no existing setting")
    *parents, leaf = path.split(".")
    node = settings
    for key in parents:
        node = node[key]
    if isinstance(node[leaf], dict):
        raise ConfigError(f"'{path}' names a group of settings, not one setting")
    node[leaf] = value


def training_settings(training: dict, loss: str) -> dict:
    """The training settings of a run under ``loss``: the config's ``training`` with the
    entries of its ``per_loss[loss]`` put in (e.g. a higher step cap for ``sup``, whose
    runs plateau later than ``ei`` runs)."""
    settings = {key: value for key, value in training.items() if key != "per_loss"}
    return {**settings, **training.get("per_loss", {}).get(loss, {})}
