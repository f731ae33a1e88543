"""Loading and validating the benchmark's YAML files.

Every YAML file is parsed with ``yaml.safe_load`` and checked against a JSON schema
in ``workflow/schemas/``; a failure raises :class:`ConfigError` naming the file and
the key at fault. The schemas, like the configs, methods and datasets, are read from a
checkout of the repository: the package runs from one (``pip install -e .``).
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


def load_schema(name: str) -> dict:
    """The JSON schema ``workflow/schemas/<name>.schema.yaml``."""
    if not SCHEMAS.is_dir():
        raise ConfigError(f"{SCHEMAS}: not found: deqbench runs from a checkout of its repository "
                          "(pip install -e <checkout>), where it reads its schemas, configs and methods")
    return load_yaml(SCHEMAS / f"{name}.schema.yaml")


def validate(data: dict, schema_name: str, source: str | Path) -> dict:
    """Validate ``data`` against ``workflow/schemas/<schema_name>.schema.yaml``.

    Defaults declared in the schema are not filled in: callers read them explicitly.
    """
    errors = sorted(
        jsonschema.Draft202012Validator(load_schema(schema_name)).iter_errors(data), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        key = ".".join(str(p) for p in first.absolute_path) or "<top level>"
        raise ConfigError(f"{source}: key '{key}': {explain(first)}")
    return data


def explain(error: jsonschema.ValidationError) -> str:
    """The error's message, naming the allowed values of an enum and the alternatives of a
    oneOf or anyOf (whose own message only says that none matched)."""
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if error.validator in ("oneOf", "anyOf"):
        return f"{error.instance!r} is not allowed; allowed: {' or '.join(map(summarize, error.validator_value))}"
    return error.message


def summarize(schema: dict) -> str:
    """One alternative of a schema in a few words: ``[none]``, ``a list of (sup, ei)``."""
    if "const" in schema:
        return yaml.safe_dump(schema["const"], default_flow_style=True).splitlines()[0]
    if "enum" in schema:
        return ", ".join(map(str, schema["enum"]))
    if schema.get("type") == "array":
        return f"a list of ({summarize(schema.get('items', {}))})"
    return str(schema.get("type", "any value"))


def load_validated(path: str | Path, schema_name: str) -> dict:
    """Load a YAML file and validate it against a named schema."""
    return validate(load_yaml(path), schema_name, path)


JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number",
              str: "string", list: "array", dict: "object"}


def coerce(value: object, schema: dict) -> object:
    """``value`` with every string read as the type ``schema`` asks for at its place.

    Snakemake leaves the values of ``--config`` as strings (``seeds=[0]`` gives ``['0']``,
    ``training={steps: 10}`` gives ``{'steps': '10'}``): a string where the schema allows
    another type is read as YAML, as in a config file (so ``"[0, 1]"`` and ``"{steps: 10}"``
    become a list and a mapping), and kept when that is no allowed type either, for
    validation to report.
    """
    allowed = schema.get("type", [])
    allowed = [allowed] if isinstance(allowed, str) else allowed
    if isinstance(value, str) and set(allowed) - {"string"}:
        value = read_as(value, allowed)
    if isinstance(value, dict):
        return {key: coerce(item, property_schema(schema, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [coerce(item, schema.get("items", {})) for item in value]
    return value


def read_as(text: str, allowed: list[str]) -> object:
    """``text`` read as YAML when that gives one of the ``allowed`` JSON types, else ``text``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and "number" in allowed:
        try:
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    kind = JSON_TYPES.get(type(value))
    return value if kind in allowed or (kind == "integer" and "number" in allowed) else text


def property_schema(schema: dict, key: str) -> dict:
    """The schema of the property ``key`` of an object ``schema`` ({} when it has none)."""
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


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


def config_task_names() -> list[str]:
    """The tasks of the configs in ``config/``: the default and the overlays beside it,
    which may add tasks."""
    names = {}
    for path in sorted((ROOT / "config").glob("*.yaml")):
        names.update(dict.fromkeys(load_yaml(path).get("tasks", {})))
    return list(names)


def check_method_tasks(definition: dict, known: list[str], source: str | Path) -> None:
    """Raise :class:`ConfigError` naming ``source`` when a method definition's ``tasks``
    names a task not ``known`` (a misspelt task would leave that task out without a word)."""
    unknown = [name for name in definition.get("tasks", []) if name not in known]
    if unknown:
        raise ConfigError(f"{source}: key 'tasks': unknown task(s) {', '.join(unknown)}; "
                          f"the config's tasks: {', '.join(known)}")
