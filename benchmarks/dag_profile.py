"""Where a finished DAG's time went: per rule, per job, and the harness against the work.

    python benchmarks/dag_profile.py [RESULTS] [--top 10] [--logs .snakemake/log]

Reads what Snakemake wrote with ``benchmark:`` (``RESULTS/benchmarks/<rule>/...tsv``: the
job's wall seconds ``s`` and ``cpu_time``) and the training records. A train job's work is
its training loop (``train_wall_s_this_process`` in ``train.json``: the steps, plus the
untimed validation and fidelity measurements); the rest of its wall time is the harness
(process start, imports, loading the task, writing results). The other rules are
reported whole, and their harness is estimated at the train jobs' median each.

Job seconds add up the time each job took, not the wall time of the DAG, which runs
several jobs at once: that comes from Snakemake's own logs, one per invocation (a run
resumed in pieces has several), with the share of the cores its jobs kept busy (a job
killed mid-run and resumed counts only its last process, so a run in pieces reads low).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

JOB_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
CORES = re.compile(r"^Provided cores: (\d+)$")


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


def snakemake_pieces(log_dir: Path) -> pd.DataFrame:
    """One row per Snakemake invocation that ran jobs (``.snakemake/log/<start>.snakemake.log``;
    a DAG run in pieces has several): its start (the log's name), the start of its first job,
    the end of its last, its cores and finished jobs. Its wall time runs from the start, so it
    includes Snakemake's own start-up (parsing, building the DAG) before the first job."""
    rows = []
    for log in sorted(log_dir.glob("*.snakemake.log")):
        lines = log.read_text().splitlines()
        stamps = [datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y") for m in map(JOB_STAMP.match, lines) if m]
        finished = sum(line.startswith("Finished jobid") for line in lines)
        if not stamps or not finished:
            continue
        cores = next((int(m.group(1)) for m in map(CORES.match, lines) if m), 1)
        start = datetime.strptime(log.name.split(".snakemake")[0], "%Y-%m-%dT%H%M%S.%f")
        rows.append({"log": log.name, "cores": cores, "jobs": finished,
                     "wall_s": (stamps[-1] - start).total_seconds(),
                     "start_up_s": (stamps[0] - start).total_seconds()})
    return pd.DataFrame(rows, columns=["log", "cores", "jobs", "wall_s", "start_up_s"])


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


def report(results: Path, top: int, log_dir: Path | None = None) -> str:
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
        others = jobs[jobs["rule"] != "train"]
        lines += ["train jobs: training loop against the harness around it",
                  f"  loop {done['loop_s'].sum():.0f} s, harness {harness:.0f} s (median {start_up:.1f} s a job)",
                  f"  train harness / all job seconds: {harness / total:.3f}",
                  f"  all non-train jobs / all job seconds: {others['s'].sum() / total:.3f}",
                  f"  the {len(others)} other jobs' harness, estimated at that median each: "
                  f"{len(others) * start_up:.0f} s",
                  f"  harness (train measured, others estimated) / all job seconds: "
                  f"{(harness + len(others) * start_up) / total:.3f}"]
    log_dir = log_dir or results.resolve().parent / ".snakemake" / "log"
    pieces = snakemake_pieces(log_dir)
    if not pieces.empty:
        capacity = (pieces["wall_s"] * pieces["cores"]).sum()
        cores = ", ".join(map(str, sorted(pieces["cores"].unique())))
        lines += ["", f"Snakemake ({log_dir}): {len(pieces)} piece(s), {pieces['jobs'].sum()} jobs finished, "
                  f"wall {pieces['wall_s'].sum():.0f} s on {cores} cores",
                  f"  start-up before the first job: {pieces['start_up_s'].sum():.0f} s",
                  f"  job seconds / (wall x cores): {jobs['s'].sum() / capacity:.3f} "
                  "(below 1: cores idle by the DAG's shape, shared with other work, or killed jobs)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--logs", type=Path, help="Snakemake's logs (default: RESULTS/../.snakemake/log)")
    args = parser.parse_args()
    print(report(args.results, args.top, args.logs))


if __name__ == "__main__":
    main()
