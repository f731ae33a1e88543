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


SNAKEMAKE_LOG = """Assuming unrestricted shared filesystem usage.
Provided cores: 2
[Sun Nov 29 16:06:17 2026]
localrule train:
[Sun Nov 29 16:07:14 2026]
Finished jobid: 26 (Rule: train)
1 of 2 steps (50%) done
[Sun Nov 29 16:09:47 2026]
Finished jobid: 24 (Rule: evaluate)
2 of 2 steps (100%) done
"""


def test_wall_time_and_core_use_come_from_snakemakes_logs_one_per_piece(tmp_path):
    logs = tmp_path / ".snakemake" / "log"
    logs.mkdir(parents=True)
    (logs / "2026-11-29T160606.000000.snakemake.log").write_text(SNAKEMAKE_LOG)  # 221 s, start-up 11 s
    (logs / "2026-11-29T170000.000000.snakemake.log").write_text("Nothing to be done.\n")  # ran no job
    results = tmp_path / "results"
    benchmark_file(results, "train/ct/a/sup/seed0", 300.0)
    benchmark_file(results, "evaluate/ct/a/sup/seed0", 142.0)
    pieces = dag_profile.snakemake_pieces(logs)
    assert pieces[["cores", "jobs", "wall_s", "start_up_s"]].values.tolist() == [[2, 2, 221.0, 11.0]]
    text = dag_profile.report(results, top=2)  # logs found beside the results folder
    assert "1 piece(s), 2 jobs finished, wall 221 s on 2 cores" in text
    assert f"job seconds / (wall x cores): {442 / 442:.3f}" in text
