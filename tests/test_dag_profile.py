"""benchmarks/dag_profile.py: per-rule sums and the harness share, on toy benchmark files
whose answers are known."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dag_profile  # noqa: E402


def benchmark_file(results: Path, rule_and_job: str, seconds: float) -> None:
    tsv = results / "benchmarks" / f"{rule_and_job}.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text(f"s\th:m:s\tcpu_time\n{seconds}\t0:00:00\t{seconds / 2}\n")


def test_train_harness_is_measured_and_the_other_jobs_harness_estimated(tmp_path):
    for seed, (wall, loop) in enumerate([(100.0, 90.0), (60.0, 48.0), (50.0, 30.0)]):
        benchmark_file(tmp_path, f"train/ct/a/sup/seed{seed}", wall)
        run = tmp_path / "runs" / "ct" / "a" / "sup" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "train.json").write_text(json.dumps({"train_wall_s_this_process": loop}))
    benchmark_file(tmp_path, "evaluate/ct/a/sup/seed0", 40.0)
    benchmark_file(tmp_path, "leaderboard", 10.0)  # a rule with one job
    text = dag_profile.report(tmp_path, top=3)
    # harness 10 + 12 + 20 = 42 s (median 12); two other jobs estimated at 12 s each; 260 job seconds
    assert "jobs: 5, job seconds: 260" in text
    assert "loop 168 s, harness 42 s (median 12.0 s a job)" in text
    assert "the 2 other jobs' harness, estimated at that median each: 24 s" in text
    assert f"harness (train measured, others estimated) / all job seconds: {66 / 260:.3f}" in text
