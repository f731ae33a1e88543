"""Device selection and one GPU per job, with the GPU count mocked on this CPU machine."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from deqbench import gpus, measure

CLAIM = textwrap.dedent("""
    import sys, time
    from deqbench.gpus import claim_gpu
    print(claim_gpu(2, sys.argv[1]), flush=True)
    time.sleep(float(sys.argv[2]))
""")


def test_concurrent_jobs_get_distinct_gpus_and_a_third_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    holders = [subprocess.Popen([sys.executable, "-c", CLAIM, str(tmp_path), "5"], stdout=subprocess.PIPE,
                                text=True, env=env) for _ in range(2)]
    claimed = sorted(p.stdout.readline().strip() for p in holders)
    assert claimed == ["0", "1"]
    third = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path), "0"], capture_output=True, text=True, env=env)
    assert third.returncode != 0 and "--resources gpu=2" in third.stderr
    for p in holders:
        p.kill()
        p.wait()
    freed = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path), "0"], capture_output=True, text=True, env=env)
    assert freed.stdout.strip() == "0"  # a finished (or crashed) job frees its slot


def test_existing_cuda_visible_devices_is_respected(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpus.claim_gpu(8, tmp_path) == "3"


def test_auto_is_cpu_without_gpus_and_claims_with_them(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert measure.resolve_device("auto").type == "cpu"
    claims = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(measure, "claim_gpu", lambda count: claims.append(count) or "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert measure.resolve_device("auto").type == "cuda" and claims == [2]


def test_an_explicit_missing_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        measure.resolve_device("cuda:0")
