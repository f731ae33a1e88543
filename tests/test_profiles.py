"""Profiles change what they state and nothing else: every method's hyperparameters, resolved
as a run with ``--profile profiles/<name>`` resolves them, keep their method.yaml's solver
settings and iteration counts; the paper profiles size the denoisers."""

import copy

import pytest
from snakemake.utils import update_config, validate

from deqbench.config import ROOT, ConfigError, load_yaml
from deqbench.methods import discover, load_method

PROFILES = sorted(path.parent.name for path in (ROOT / "profiles").glob("*/config.yaml"))
PAPER_DENOISER = {"depth": 17, "width": 64}  # DnCNN-17, 64 features (Gilton et al. 2021)
# what each profile sets in the denoiser of every method that has one (None: nothing)
DENOISER = {"default": None, "smoke": None, "claims": None, "paper": PAPER_DENOISER, "slurm": PAPER_DENOISER}
DENOISER_METHODS = {"de-prox", "deq-id", "deq-jfb", "oder", "unrolled", "pnp", "red"}
SOLVER_METHODS = {"de-prox", "deq-id", "deq-jfb", "oder", "unrolled", "pnp", "red", "tv"}


def merged_config(*configfiles) -> dict:
    """The config Snakemake builds from ``configfiles`` (each merged into the last by
    Snakemake's own recursive update), validated as the Snakefile validates it (defaults set)."""
    config = {}
    for path in configfiles:
        update_config(config, load_yaml(ROOT / path))
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def profile_config(profile: str) -> dict:
    """The config of ``--profile profiles/<profile>``: its configfile list, or the Snakefile's
    config/config.yaml alone."""
    return merged_config(*load_yaml(ROOT / "profiles" / profile / "config.yaml").get("configfile",
                                                                                    ["config/config.yaml"]))


def resolved(config: dict) -> dict[str, dict]:
    """Every method's hyperparameters under ``config``, as workflow/rules/common.smk resolves them."""
    methods, invalid = discover(ROOT / config["methods_dir"], config["hyperparameters"],
                                config["method_hyperparameters"])
    assert invalid == {}
    return {name: method.hyperparameters for name, method in methods.items()}


def declared(method: str) -> dict:
    """A method's hyperparameters as its method.yaml writes them."""
    return load_yaml(ROOT / "methods" / method / "method.yaml").get("hyperparameters", {})


def solver_settings(hyperparameters: dict) -> dict:
    """The forward and backward solver settings and the iteration counts."""
    return {key: value for key, value in hyperparameters.items()
            if key in ("forward", "backward") or key.endswith("iterations")}


def test_every_profile_states_what_it_sets():
    assert set(DENOISER) == set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_no_profile_changes_a_solver_setting_or_an_iteration_count(profile):
    methods = resolved(profile_config(profile))
    assert {name for name in methods if solver_settings(declared(name))} == SOLVER_METHODS
    for name, hyperparameters in methods.items():
        assert solver_settings(hyperparameters) == solver_settings(declared(name)), (profile, name)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_sets_the_denoiser_it_states_and_nothing_else(profile):
    methods = resolved(profile_config(profile))
    assert {name for name in methods if "denoiser" in declared(name)} == DENOISER_METHODS
    for name, hyperparameters in methods.items():
        expected = copy.deepcopy(declared(name))
        if name in DENOISER_METHODS and DENOISER[profile]:
            expected["denoiser"].update(DENOISER[profile])
        assert hyperparameters == expected, (profile, name)


@pytest.mark.parametrize("path", ["forward.max_iter", "backward.tol", "forward.anderson", "iterations",
                                  "inner_iterations"])
def test_a_shared_solver_setting_is_refused_with_its_name(path):
    message = f"config hyperparameters: '{path}' is a solver setting or iteration count.*set it per method"
    with pytest.raises(ConfigError, match=message):
        discover(ROOT / "methods", {path: 1})
    with pytest.raises(ConfigError, match=message):
        load_method(ROOT / "methods" / "deq-id", {path: 1})


def test_a_per_method_setting_from_a_config_file_reaches_that_method_alone(tmp_path):
    overlay = tmp_path / "caps.yaml"
    overlay.write_text("method_hyperparameters: {deq-id: {forward.max_iter: 100, denoiser.depth: 9}}\n")
    methods = resolved(merged_config("config/config.yaml", "config/paper.yaml", overlay))
    assert methods["deq-id"]["forward"] == {**declared("deq-id")["forward"], "max_iter": 100}
    assert methods["deq-id"]["denoiser"]["depth"] == 9  # set after the shared 17
    assert methods["deq-jfb"]["forward"] == declared("deq-jfb")["forward"]


@pytest.mark.parametrize("per_method, message", [
    ({"deq-idd": {"forward.max_iter": 100}}, "config method_hyperparameters: 'deq-idd' is no method folder"),
    ({"deq-id": {"forward.max_itr": 100}},
     "config method_hyperparameters.deq-id: 'forward.max_itr' names no existing setting of .*deq-id/method.yaml"),
    ({"direct": {"iterations": 10}},
     "config method_hyperparameters.direct: 'iterations' names no existing setting of .*direct/method.yaml"),
])
def test_a_per_method_setting_of_a_missing_method_or_path_stops_with_both_names(per_method, message):
    with pytest.raises(ConfigError, match=message):
        discover(ROOT / "methods", per_method=per_method)
