"""The Snakemake DAG: dry runs of every profile, bad input, and a real smoke run."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import copy_workflow, snakemake
from deqbench.config import ROOT, load_yaml
from deqbench.methods import discover

WRONG_SHAPE_MODEL = """import torch


class Half(torch.nn.Module):
    def forward(self, y, physics):
        return physics.A_adjoint(y)[..., ::2, :]


def build(hparams, task):
    return Half()
"""


@pytest.mark.parametrize("profile", ["default", "smoke", "paper"])
def test_dry_run_of_every_profile(workspace, profile):
    result = snakemake(workspace, "-n", "--profile", f"profiles/{profile}")
    assert "leaderboard" in result.stdout


def test_dry_run_plans_every_method_task_and_loss(workspace):
    methods, _ = discover(workspace / "methods")
    result = snakemake(workspace, "-n", "--profile", "profiles/smoke", "--quiet", "rules")
    seeds = len(load_yaml(workspace / "config" / "smoke.yaml")["seeds"])
    planned = sum(len(m.losses) * 2 * seeds for m in methods.values() if m.trainable)
    line = next(l for l in result.stdout.splitlines() if l.split()[:1] == ["train"])
    assert int(line.split()[1]) == planned


def test_unknown_config_key_stops_with_its_name(workspace):
    result = snakemake(workspace, "-n", "--profile", "profiles/smoke", "--config", "trainig={}", check=False)
    assert result.returncode != 0
    assert "trainig" in result.stdout + result.stderr


def test_misspelt_shared_hyperparameter_stops_with_its_name(workspace):
    result = snakemake(workspace, "-n", "--profile", "profiles/smoke", "--config",
                       "hyperparameters={'denoiser.dept': 17}", check=False)
    assert result.returncode != 0
    assert "'denoiser.dept' is a hyperparameter of no method" in result.stdout + result.stderr


def test_a_misspelt_task_leaves_that_method_out_with_its_reason_and_plans_the_others(workspace):
    yaml_file = workspace / "methods" / "direct" / "method.yaml"
    yaml_file.write_text(yaml_file.read_text() + "tasks: [ct, mir]\n")
    result = snakemake(workspace, "-n", "--profile", "profiles/smoke")
    output = result.stdout + result.stderr
    assert "method 'direct' is left out of this run" in output
    assert "key 'tasks': unknown task(s) mir; the config's tasks: ct, mri" in output
    assert "rule train:" in output and "runs/ct/direct/" not in output  # the other methods still run


def test_smoke_dag_end_to_end(smoke_run):
    table = pd.read_csv(smoke_run / "results" / "leaderboard.csv")
    methods, _ = discover(smoke_run / "methods")
    # three steps on 32x32 images: a DEQ may rightly be unreliable, but every run has results
    ok = table[table["status"].isin(["ok", "unreliable"])]
    for name, method in methods.items():
        for task in ("ct", "mri"):
            if method.supports(task):
                assert set(ok[(ok["method"] == name) & (ok["task"] == task)]["loss"]) == set(method.losses)
    assert ok["psnr"].between(5, 60).all() and ok["ssim"].between(-1, 1).all()
    assert (ok["n_test"] == 4).all()
    assert ok["git_commit"].notna().all() and ok["config_hash"].notna().all()
    oracle = table[table["status"] == "oracle"]
    assert set(oracle["task"]) == {"ct", "mri"} and oracle["psnr"].between(5, 60).all()
    deq = ok[(ok["family"] == "deq") & (ok["loss"] != "none")]
    assert deq["spectral_radius_max"].between(0, 10).all() and deq["gradient_cosine_min"].notna().all()
    assert (deq["gradient_cosine_median"] >= deq["gradient_cosine_min"]).all()  # the gate's and the worst step's
    assert (smoke_run / "results" / "leaderboard.md").read_text().count("## ") == 4
    manifest = json.loads((smoke_run / "results" / "data" / "ellipses.json").read_text())
    assert len(manifest["sha256"]) == 64 and manifest["splits"]["train"] == [8, 64, 64]
    scores = pd.read_parquet(smoke_run / "results" / "scores.parquet")
    assert scores.equals(pd.read_csv(smoke_run / "results" / "scores.csv").astype(scores.dtypes.to_dict()))
    test_psnr = scores[(scores["split"] == "test") & (scores["metric"] == "psnr")]
    means = test_psnr.groupby(["task", "method", "loss"])["value"].mean()  # over seeds and images
    scored = table[table["status"].isin(["ok", "unreliable", "oracle"])].set_index(["task", "method", "loss"])["psnr"]
    assert len(scored) and np.allclose(means.loc[scored.index], scored)  # the long table gives the rows' means
    assert scores["git_commit"].notna().all() and scores["device"].notna().all()


SEEDS_AND_BROKEN = ("--profile", "profiles/smoke", "--configfile", "config/config.yaml", "config/smoke.yaml",
                    "config/seeds.yaml")


@pytest.fixture(scope="module")
def seeds_and_broken(tmp_path_factory):
    """One smoke DAG of FBP, DEQ-JFB over two training seeds with a shared hyperparameter
    (denoiser width 8), a method folder with a malformed yaml and one whose model returns
    the wrong shape: its folder, the planned jobs and Snakemake's output."""
    workdir = copy_workflow(tmp_path_factory.mktemp("seeds-and-broken"))
    (workdir / "methods" / "broken").mkdir()
    (workdir / "methods" / "broken" / "method.yaml").write_text("name: Broken\nfamily: deq\n")
    (workdir / "methods" / "broken" / "model.py").write_text("")
    shape = workdir / "methods" / "halfsize"
    shape.mkdir()
    (shape / "method.yaml").write_text("name: Half\nfamily: reference\ndescription: wrong shape\nlosses: [none]\ntasks: [ct]\n")
    (shape / "model.py").write_text(WRONG_SHAPE_MODEL)
    (workdir / "config" / "seeds.yaml").write_text("methods: [direct, deq-jfb, halfsize, broken]\nseeds: [0, 1]\n"
                                                   "hyperparameters: {denoiser.width: 8}\n")
    planned = planned_jobs(workdir, *SEEDS_AND_BROKEN)
    result = snakemake(workdir, *SEEDS_AND_BROKEN)
    return workdir, planned, result.stdout + result.stderr


@pytest.mark.slow
def test_broken_methods_do_not_take_down_the_others(seeds_and_broken):
    """A malformed yaml and a wrong output shape each get a row with the reason."""
    workdir, _, output = seeds_and_broken
    assert "broken/method.yaml" in output
    table = pd.read_csv(workdir / "results" / "leaderboard.csv").set_index("method")
    assert table.loc["broken", "status"].iloc[0] == "invalid"
    assert "key '<top level>'" in table.loc["broken", "reason"].iloc[0]
    assert table.loc["halfsize", "status"] == "failed"
    assert "shape (1, 1, 16, 32)" in table.loc["halfsize", "reason"]
    assert (table.loc["direct", "status"] == "ok").all()


@pytest.mark.slow
def test_every_seed_is_a_run_and_the_leaderboard_combines_them(seeds_and_broken):
    """Two training seeds: one train job per seed of a trained method, one evaluation of
    an untrained one, and leaderboard rows over both seeds with their spread."""
    workdir, planned, _ = seeds_and_broken
    assert planned["train"] == 2 * 2 * 2  # deq-jfb: 2 tasks x 2 losses x 2 seeds
    runs = workdir / "results" / "runs" / "ct"
    assert sorted(p.name for p in (runs / "deq-jfb" / "sup").iterdir()) == ["seed0", "seed1"]
    assert [p.name for p in (runs / "direct" / "none").iterdir()] == ["seed0"]
    table = pd.read_csv(workdir / "results" / "leaderboard.csv").set_index(["task", "method", "loss"])
    seeds = [pd.read_csv(runs / "deq-jfb" / "sup" / f"seed{s}" / "images.csv") for s in (0, 1)]
    per_seed = [s.loc[s["split"] == "test", "psnr"].mean() for s in seeds]
    row = table.loc[("ct", "deq-jfb", "sup")]
    assert row["n_seeds"] == 2 and row["psnr"] == pytest.approx(sum(per_seed) / 2)
    assert row["psnr_seed_std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5)
    assert per_seed[0] != per_seed[1]  # the seeds trained different models
    assert table.loc[("ct", "direct", "none"), "n_seeds"] == 1


@pytest.mark.slow
def test_shared_hyperparameters_reach_the_trained_model(seeds_and_broken):
    """A profile's shared hyperparameter sizes the denoiser that the train job builds."""
    workdir, _, _ = seeds_and_broken
    weights = torch.load(workdir / "results/runs/ct/deq-jfb/sup/seed0/model.pt", weights_only=True)
    widths = {w.shape[0] for name, w in weights.items() if name.endswith(".bias")}  # the denoiser's convolutions
    assert widths == {8, 1}  # hidden layers and the single-channel output layer (5 layers at 32 without it)


def test_the_claims_profile_plans_its_methods_on_both_tasks_with_early_stopping(workspace):
    """profiles/claims: the include lists select its tasks and methods, the protocol's seeds."""
    claims = load_yaml(workspace / "config" / "claims.yaml")
    assert claims["training"]["early_stopping"]["patience"] >= 1
    methods, _ = discover(workspace / "methods")
    chosen = [methods[name] for name in claims["methods"]]
    tasks = len(claims["run_tasks"])
    trained = sum(len(m.losses) for m in chosen if m.trainable) * len(claims["seeds"]) * tasks
    untrained = sum(len(m.losses) for m in chosen if not m.trainable) * tasks
    jobs = planned_jobs(workspace, "--profile", "profiles/claims")
    assert (jobs["train"], jobs["evaluate"]) == (trained, trained + untrained)
    assert jobs["simulate"] == jobs["nearest_training"] == tasks == 2  # CT and MRI
    assert trained == 84


def planned_jobs(workdir, *args, env=None) -> dict[str, int]:
    """Rule name to the number of its jobs that a dry run would run."""
    result = snakemake(workdir, "-n", *args, "--quiet", "rules", env=env)
    counts = (line.split() for line in result.stdout.splitlines())
    return {words[0]: int(words[1]) for words in counts
            if len(words) == 2 and words[1].isdigit() and words[0] != "total"}


def copied(workdir, tmp_path):
    """``workdir`` copied as `cp -a` does, timestamps kept, to a new folder."""
    return shutil.copytree(workdir, tmp_path / "copy", copy_function=shutil.copy2, symlinks=True)


TWO_METHODS = ("--profile", "profiles/smoke", "--config", "methods=['direct','deq-jfb']")
TWO_METHODS_OUTPUTS = ("results/leaderboard.csv", "results/report/index.html")


def package_first(workdir) -> dict:
    """The environment that imports the package from ``workdir``."""
    return {"PYTHONPATH": str(workdir)}


@pytest.fixture(scope="module")
def run_with_its_package(tmp_path_factory):
    """Two methods run to the leaderboard and the page in a workspace holding its own copy of
    the package, first on the path: tests copy it to move it or edit the package."""
    workdir = copy_workflow(tmp_path_factory.mktemp("with-package"))
    shutil.copytree(ROOT / "deqbench", workdir / "deqbench", ignore=shutil.ignore_patterns("__pycache__"))
    snakemake(workdir, *TWO_METHODS_OUTPUTS, *TWO_METHODS, env=package_first(workdir))
    return workdir


@pytest.mark.slow
def test_a_finished_run_copied_elsewhere_plans_what_the_original_plans(smoke_run, tmp_path):
    """The package imported from the checkout, outside the workspace: inputs by absolute path.
    Nothing unless the checkout's package changed since the run."""
    args = ("--profile", "profiles/smoke")
    assert planned_jobs(copied(smoke_run, tmp_path), *args) == planned_jobs(smoke_run, *args)


@pytest.mark.slow
def test_a_finished_run_copied_with_its_package_plans_nothing(run_with_its_package, tmp_path):
    """The package inside the workspace: inputs relative to it."""
    workdir = copied(run_with_its_package, tmp_path)
    assert planned_jobs(workdir, *TWO_METHODS_OUTPUTS, *TWO_METHODS, env=package_first(workdir)) == {}


@pytest.mark.slow
def test_editing_result_code_reruns_the_runs_and_marks_them_stale_but_presentation_code_only_re_renders(
        run_with_its_package, tmp_path):
    """A report edit plans the page alone, a statistics edit the leaderboard and the page, and
    neither makes a run stale; a solver edit schedules every run again and makes the
    finished ones stale on the leaderboard."""
    workdir = copied(run_with_its_package, tmp_path)
    env = package_first(workdir)
    args = (*TWO_METHODS_OUTPUTS, *TWO_METHODS)
    runs = {"train": 4, "evaluate": 6}  # deq-jfb: 2 tasks x 2 losses trained; direct: evaluated only

    def edit(module):
        with open(workdir / "deqbench" / module, "a") as code:
            code.write(f"# an edit of {module}\n")

    def statuses():
        snakemake(workdir, "results/leaderboard.csv", *TWO_METHODS, "--forcerun", "leaderboard",
                  "--allowed-rules", "leaderboard", env=env)
        table = pd.read_csv(workdir / "results" / "leaderboard.csv")
        return set(table[table["method"].isin(["direct", "deq-jfb"])]["status"])

    edit("report.py")
    assert planned_jobs(workdir, *args, env=env) == {"report": 1}
    edit("statistics.py")
    assert planned_jobs(workdir, *args, env=env) == {"leaderboard": 1, "report": 1}
    assert statuses() == {"ok"}
    edit("blocks/solvers.py")
    planned = planned_jobs(workdir, *args, env=env)
    assert {rule: planned.get(rule) for rule in runs} == runs
    assert statuses() == {"stale"}
