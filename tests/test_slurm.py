"""Snakemake's SLURM executor (snakemake-executor-plugin-slurm) on a real single-node
SLURM cluster started on this machine by tests/slurm/cluster.sh.

Skipped, with what is missing, where SLURM cannot run here (not root, no `slurm-wlm
munge`, daemons that do not start); CI installs them (.ci/run).
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, snakemake

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue")


@pytest.fixture
def slurm_cluster(tmp_path_factory, monkeypatch):
    """Start the cluster, point SLURM clients at it (SLURM_CONF), stop it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("SLURM test needs root to start slurmd")
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install slurm-wlm munge")
    state = tmp_path_factory.mktemp("slurm")
    try:
        started = subprocess.run([CLUSTER, "start", state], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        started = None
    if started is None or started.returncode != 0:
        subprocess.run([CLUSTER, "stop", state], capture_output=True, timeout=60)
        reason = "timed out" if started is None else started.stderr.strip()[-1500:]
        pytest.skip(f"single-node SLURM did not start: {reason}")
    monkeypatch.setenv("SLURM_CONF", str(state / "slurm.conf"))
    yield state
    subprocess.run([CLUSTER, "stop", state], capture_output=True, timeout=60)


def test_slurm_profile_plans_gpu_jobs(workspace):
    """The cluster profile needs no cluster to plan: one GPU for every model job."""
    result = snakemake(workspace, "-n", "--profile", "profiles/slurm")
    plan = result.stdout + result.stderr
    train = plan[plan.index("rule train:"):].split("\n\n")[0]
    assert "gpu=1" in train and "slurm_partition=" in train


@pytest.mark.slow
def test_smoke_data_jobs_run_as_slurm_jobs(slurm_cluster, workspace):
    """prepare_dataset (x2) and simulate for CT, each submitted with sbatch."""
    result = snakemake(
        workspace, "--profile", "profiles/smoke", "--executor", "slurm", "--jobs", "2",
        # The cluster's partition; no account (there is no accounting database), and
        # squeue for the job states (sacct needs slurmdbd).
        "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=10",
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
        "results/tasks/ct.pt",
    )
    log = result.stdout + result.stderr
    for output in ("data/ellipses.pt", "data/dicom-ct.pt", "tasks/ct.pt", "tasks/ct.json"):
        assert (workspace / "results" / output).stat().st_size > 0, output

    # Every job went through sbatch: the plugin logs one SLURM job id per job ...
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(job_ids) == 3, log[-3000:]
    # ... slurmctld scheduled and finished each of them on the node ...
    controller = (slurm_cluster / "slurmctld.log").read_text()
    for job_id in job_ids:
        assert f"sched: Allocate JobId={job_id} " in controller
        assert f"_job_complete: JobId={job_id} done" in controller
    # ... and each left its SLURM log, written by the job step on the node.
    logs = {path.stem for path in (workspace / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert set(job_ids) <= logs
