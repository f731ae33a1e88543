"""What a result was computed from: hashes of its inputs and code, and the machine.

A run's identity (:func:`deqbench.runs.run_identity`) hashes its config, its data, its
method folder and :func:`code_fingerprint`, the package modules that compute results:
every module of ``deqbench`` except those that only present them (:data:`PRESENTATION`).
Editing any of those modules makes older results ``stale`` on the leaderboard, and, as
their files are inputs of the train, tune and evaluate rules, Snakemake reruns the runs.
The presentation modules are inputs of the leaderboard, report and scaling rules that
import them: an edit re-renders the tables and figures and retrains nothing.

The rules name these files relative to the working directory when the package lies under
it (a checkout run from its root), so a results folder moved with it (``cp -a``) plans
nothing; a package installed elsewhere is named by its absolute path, which stays valid
when the results move but not when the package does.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from deqbench.config import ROOT

PACKAGE = Path(__file__).resolve().parent
PRESENTATION = ("leaderboard.py", "report.py", "figures.py", "statistics.py", "scaling.py", "check.py", "progress.py")
LIBRARIES = ("torch", "deepinv", "numpy", "scikit-image", "snakemake")


def config_hash(*parts: object) -> str:
    """Short, order-stable sha256 of JSON-serialisable parts (the provenance of a run)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes with a ``hashlib`` algorithm."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def code_files() -> list[Path]:
    """The package's modules that compute results (module docstring)."""
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if path.parent != PACKAGE or path.name not in PRESENTATION)


def code_fingerprint() -> str:
    """Hash of the name and content of every :func:`code_files` module."""
    return config_hash(*[(str(path.relative_to(PACKAGE)), file_digest(path)) for path in code_files()])


def git_commit() -> str:
    """HEAD of the benchmark repository, ``+dirty`` when tracked files changed."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True, check=False).stdout.strip()
    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def provenance(device: torch.device) -> dict:
    """Where and with what a result was computed."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "absent"
    return {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "versions": versions,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(),
        "hostname": platform.node(),
        "pid_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
