"""Reading the config: overrides from the command line and the messages of schema errors."""

import pytest

from conftest import snakemake
from deqbench.config import ROOT, ConfigError, coerce, config_task_names, load_schema, load_yaml, validate

CONFIG_SCHEMA = load_schema("config")


@pytest.mark.parametrize(("override", "expected"), [
    ({"seeds": ["0", "1"]}, {"seeds": [0, 1]}),
    ({"seeds": "[0, 1]"}, {"seeds": [0, 1]}),
    ({"training": {"steps": "10", "lr": "1e-3"}}, {"training": {"steps": 10, "lr": 0.001}}),
    ({"training": "{steps: 10}"}, {"training": {"steps": 10}}),
    ({"training": {"early_stopping": {"patience": "3"}}}, {"training": {"early_stopping": {"patience": 3}}}),
    ({"datasets": {"ellipses": {"splits": {"train": "8", "val": "null"}}}},
     {"datasets": {"ellipses": {"splits": {"train": 8, "val": None}}}}),
    ({"hyperparameters": {"denoiser.depth": "17", "mode": "fast", "flag": "true"}},
     {"hyperparameters": {"denoiser.depth": 17, "mode": "fast", "flag": True}}),
])
def test_strings_are_read_as_the_schemas_types(override, expected):
    assert coerce(override, CONFIG_SCHEMA) == expected


@pytest.mark.parametrize("override", [
    {"device": "0"},  # a string where the schema wants one
    {"tasks": {"ct": {"physics": "mri"}}},  # an enum: no type to read it as
    {"seeds": ["zero"]},  # no integer: left for validation to report
    {"unknown": "1"},
])
def test_other_values_are_left_as_they_are(override):
    assert coerce(override, CONFIG_SCHEMA) == override


def test_an_enum_error_names_the_key_and_the_allowed_values():
    config = load_yaml(ROOT / "config" / "config.yaml")
    config["training"]["lr_schedule"] = "cos"
    with pytest.raises(ConfigError, match="config: key 'training.lr_schedule': 'cos' is not allowed; "
                                          "allowed: constant, cosine$"):
        validate(config, "config", "config")


def test_a_oneof_error_names_the_alternatives():
    method = {"name": "m", "family": "deq", "description": "d", "losses": ["sup", "EI"]}
    with pytest.raises(ConfigError, match=r"m.yaml: key 'losses': \['sup', 'EI'\] is not allowed; "
                                          r"allowed: \[none\] or a list of \(sup, ei\)$"):
        validate(method, "method", "m.yaml")


def test_a_missing_schema_folder_says_the_package_runs_from_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr("deqbench.config.SCHEMAS", tmp_path / "absent")
    with pytest.raises(ConfigError, match="runs from a checkout"):
        load_schema("config")


def test_the_known_tasks_are_those_of_every_config_in_config(monkeypatch, tmp_path):
    """An overlay beside the default config may add a task that a method names."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("tasks: {ct: {}, mri: {}}\n")
    (tmp_path / "config" / "wide.yaml").write_text("tasks: {ct-90: {}}\n")
    (tmp_path / "config" / "protocol.yaml").write_text("alpha: 0.05\n")
    monkeypatch.setattr("deqbench.config.ROOT", tmp_path)
    assert config_task_names() == ["ct", "mri", "ct-90"]


def test_command_line_overrides_plan_with_their_types():
    """Snakemake passes ``seeds=[0, 1]`` as ``['0', '1']`` and ``training={steps: 10}`` as
    ``{'steps': '10'}``: a dry run from the repository root plans the second seed's runs."""
    result = snakemake(ROOT, "-n", "--profile", "profiles/smoke", "--config", "seeds=[0, 1]", "training={steps: 10}")
    assert "results/runs/ct/deq-jfb/sup/seed1/model.pt" in result.stdout


def test_a_command_line_override_out_of_bounds_names_the_key():
    result = snakemake(ROOT, "-n", "--profile", "profiles/smoke", "--config", "training={steps: 0}", check=False)
    assert result.returncode != 0
    assert "config: key 'training.steps': 0 is less than the minimum of 1" in result.stdout + result.stderr
