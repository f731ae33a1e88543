"""Method discovery, schema errors and the plug-in contract."""

import shutil

import pytest
import torch

from deqbench.config import ROOT, ConfigError, load_validated, training_settings, validate
from deqbench.methods import MethodError, build_model, discover, load_method
from deqbench.tasks import Task, build_physics

GOOD_YAML = "name: Copy\nfamily: reference\ndescription: test\nlosses: [none]\n"


def make_method(root, name, yaml_text=GOOD_YAML, model_text=None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "method.yaml").write_text(yaml_text)
    shutil.copy(ROOT / "methods" / "direct" / "model.py", folder / "model.py")
    if model_text is not None:
        (folder / "model.py").write_text(model_text)
    return folder


def tiny_task():
    cfg = {"physics": "tomography", "image_size": 16, "angles": 6, "noise_sigma": 0.0}
    return Task("ct", cfg, build_physics(cfg), {})


def test_every_shipped_method_is_valid():
    methods, invalid = discover(ROOT / "methods")
    assert invalid == {}
    assert {"unet", "direct"} <= set(methods)


def test_a_new_folder_is_discovered_and_a_broken_one_is_reported(tmp_path):
    make_method(tmp_path, "copy")
    make_method(tmp_path, "broken", GOOD_YAML.replace("losses: [none]", "losses: [supervised]"))
    make_method(tmp_path, "_template")
    methods, invalid = discover(tmp_path)
    assert list(methods) == ["copy"]
    assert "broken/method.yaml: key 'losses'" in invalid["broken"]


def test_shared_hyperparameters_reach_every_method_that_has_them():
    methods, _ = discover(ROOT / "methods", {"denoiser.depth": 17})
    for name in ("deq-id", "deq-jfb", "oder", "unrolled", "pnp", "red"):
        assert methods[name].hyperparameters["denoiser"]["depth"] == 17
    assert methods["unet"].definition == load_method(ROOT / "methods" / "unet").definition


def test_a_shared_hyperparameter_no_method_has_stops_with_its_name():
    with pytest.raises(ConfigError, match="config hyperparameters: 'denoiser.dept' is a hyperparameter of no method"):
        discover(ROOT / "methods", {"denoiser.dept": 17})


def test_a_shared_hyperparameter_naming_a_group_is_refused():
    with pytest.raises(ConfigError, match="'denoiser' names a group of settings.*deq-id/method.yaml"):
        load_method(ROOT / "methods" / "deq-id", {"denoiser": 3})


@pytest.mark.parametrize("text, key", [
    ("name: X\nfamily: deq\ndescription: d\n", "<top level>"),  # losses missing
    ("name: X\nfamily: magic\ndescription: d\nlosses: [sup]\n", "family"),
    ("name: X\nfamily: deq\ndescription: d\nlosses: [sup]\nlearning_rate: 1\n", "<top level>"),
    ("name: X\nfamily: deq\ndescription: d\nlosses: [sup, none]\n", "losses"),
])
def test_schema_errors_name_the_key(tmp_path, text, key):
    folder = make_method(tmp_path, "m", text)
    with pytest.raises(ConfigError, match=f"m/method.yaml: key '{key}'"):
        load_method(folder)


def test_malformed_yaml_names_the_file(tmp_path):
    folder = make_method(tmp_path, "m", "name: [unclosed\n")
    with pytest.raises(ConfigError, match="m/method.yaml: not valid YAML"):
        load_method(folder)


def test_build_errors_become_method_errors(tmp_path):
    folder = make_method(tmp_path, "bad", model_text="def build(hparams, task):\n    raise KeyError('depth')\n")
    with pytest.raises(MethodError, match="bad/model.py: build failed: KeyError"):
        build_model(load_method(folder), tiny_task())
    folder = make_method(tmp_path, "notmodule", model_text="def build(hparams, task):\n    return 3\n")
    with pytest.raises(MethodError, match="not a torch.nn.Module"):
        build_model(load_method(folder), tiny_task())


def test_direct_reconstruction_has_the_image_shape():
    task = tiny_task()
    model = build_model(load_method(ROOT / "methods" / "direct"), task)
    y = task.physics.A(torch.rand(2, 1, 16, 16))
    assert model(y, task.physics).shape == (2, 1, 16, 16)


def test_config_schema_rejects_unknown_keys():
    config = load_validated(ROOT / "config" / "config.yaml", "config")
    config["trainig"] = {}
    with pytest.raises(ConfigError, match="key '<top level>'.*trainig"):
        validate(config, "config", "config.yaml")


def test_per_loss_training_settings_replace_the_common_ones_for_that_loss_only():
    config = load_validated(ROOT / "config" / "config.yaml", "config")
    config["training"]["per_loss"] = {"sup": {"steps": 2000}}
    validate(config, "config", "config.yaml")
    sup, ei = (training_settings(config["training"], loss) for loss in ("sup", "ei"))
    assert sup["steps"] == 2000 and ei["steps"] == config["training"]["steps"] and "per_loss" not in sup
    assert {k: v for k, v in sup.items() if k != "steps"} == {k: v for k, v in ei.items() if k != "steps"}
    config["training"]["per_loss"] = {"none": {"steps": 1}}
    with pytest.raises(ConfigError, match="per_loss"):
        validate(config, "config", "config.yaml")
