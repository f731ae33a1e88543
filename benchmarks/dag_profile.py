"""Where a finished DAG's time went: per rule, per job, and the harness against the work.

    python benchmarks/dag_profile.py [RESULTS] [--top 10]

Reads what Snakemake wrote with ``benchmark:`` (``RESULTS/benchmarks/<rule>/...tsv``: the
job's wall seconds ``s`` and ``cpu_time``) and the training records. A train job's work is
its training loop (``train_wall_s_this_process`` in ``train.json``: the steps, plus the
untimed validation and fidelity measurements); the rest of its wall time is the harness
(process start, imports, loading the task, writing results). The other rules are
reported whole, and their harness is estimated at the train jobs' median each. Job seconds add up the time each job took, not the wall time of the DAG,
which runs several jobs at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def job_times(results: Path) -> pd.DataFrame:
    """One row per benchmarked job: rule, job (its path under the rule), wall and CPU seconds."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = tsv.relative_to(results / "benchmarks").with_suffix("").parts
        rule, job = parts[0], "/".join(parts[1:]) or parts[0]  # a rule with one job: benchmarks/<rule>.tsv
        measured = pd.read_csv(tsv, sep="\t").iloc[-1]
        rows.append({"rule": rule, "job": job, "s": float(measured["s"]),
                     "cpu_s": float(measured.get("cpu_time", float("nan")))})
    return pd.DataFrame(rows, columns=["rule", "job", "s", "cpu_s"])


def training_work(results: Path, jobs: pd.DataFrame) -> pd.DataFrame:
    """Train jobs with the seconds of their training loop and of the harness around it."""
    train = jobs[jobs["rule"] == "train"].copy()
    loops = []
    for job in train["job"]:
        record = results / "runs" / job / "train.json"
        loop = json.loads(record.read_text()).get("train_wall_s_this_process") if record.exists() else None
        loops.append(float("nan") if loop is None else loop)
    train["loop_s"] = loops
    train["harness_s"] = train["s"] - train["loop_s"]
    return train


def report(results: Path, top: int) -> str:
    jobs = job_times(results)
    if jobs.empty:
        return f"no benchmark files under {results / 'benchmarks'}"
    per_rule = jobs.groupby("rule").agg(jobs=("s", "size"), job_s=("s", "sum"), cpu_s=("cpu_s", "sum"),
                                        median_s=("s", "median"), max_s=("s", "max"))
    per_rule["share"] = per_rule["job_s"] / per_rule["job_s"].sum()
    lines = [f"results: {results}", f"jobs: {len(jobs)}, job seconds: {jobs['s'].sum():.0f}", "",
             "per rule (job seconds summed over its jobs):",
             per_rule.sort_values("job_s", ascending=False).to_string(float_format=lambda v: f"{v:.2f}"), "",
             f"the {top} longest jobs:",
             jobs.nlargest(top, "s").to_string(index=False, float_format=lambda v: f"{v:.1f}"), ""]
    train = training_work(results, jobs)
    if train["loop_s"].notna().any():
        done = train.dropna(subset=["loop_s"])
        harness, total = done["harness_s"].sum(), jobs["s"].sum()
        start_up = done["harness_s"].median()  # process start, imports, task loading, writing
        others = int((jobs["rule"] != "train").sum())
        lines += ["train jobs: training loop against the harness around it",
                  f"  loop {done['loop_s'].sum():.0f} s, harness {harness:.0f} s (median {start_up:.1f} s a job)",
                  f"  train harness / all job seconds: {harness / total:.3f}",
                  f"  all non-train jobs / all job seconds: {jobs.loc[jobs['rule'] != 'train', 's'].sum() / total:.3f}",
                  f"  the {others} other jobs' harness, estimated at that median each: {others * start_up:.0f} s",
                  f"  harness (train measured, others estimated) / all job seconds: "
                  f"{(harness + others * start_up) / total:.3f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    print(report(args.results, args.top))


if __name__ == "__main__":
    main()
