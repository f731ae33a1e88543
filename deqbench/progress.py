"""How far a Snakemake run of the benchmark is, and when it will end.

    deqbench-progress [WORKDIR] [--watch SECONDS]

Reads the newest log Snakemake keeps in ``WORKDIR/.snakemake/log/`` (the run in progress or
the last one) and prints one line: jobs done of those planned, running and failed, the time
elapsed, and an estimate of the time left,

.. math::  \\hat T = \\frac{1}{c} \\sum_r \\Big( w_r\\, m_r + \\sum_{j \\in R_r} \\max(0, m_r - a_j) \\Big),

with :math:`c` the cores, :math:`w_r` the jobs of rule :math:`r` still waiting,
:math:`m_r` the median time of its finished jobs, :math:`R_r` its running jobs and
:math:`a_j` their age. Rules with no finished job yet are listed apart: the estimate does not
cover them. The jobs of one rule differ (a DEQ trains longer than a U-Net), so the estimate
is rough until several of each have finished. Snakemake prints only "N of M steps"; this
reads the same log, so it needs nothing from the run and may be called from another shell.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\S+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$")
FAILED = re.compile(r"^Error in rule (\S+):$")
STATS_ROW = re.compile(r"^(\S+)\s+(\d+)$")


@dataclass
class Progress:
    planned: dict[str, int] = field(default_factory=dict)
    cores: int = 1
    began: datetime | None = None
    running: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # job id: rule, start
    durations: dict[str, list[float]] = field(default_factory=dict)  # rule: seconds of finished jobs
    failed: int = 0

    def done(self) -> int:
        return sum(len(seconds) for seconds in self.durations.values())


def parse(lines: list[str]) -> Progress:
    """The run's plan, starts, finishes and failures, from the lines of its Snakemake log."""
    progress, stamp, rule, in_stats, failing = Progress(), None, None, False, False
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("Provided cores:"):
            progress.cores = int(line.split(":")[1])
        elif line.startswith("Job stats:"):
            in_stats = True
        elif in_stats and (row := STATS_ROW.match(line)):
            if row[1] == "total":
                in_stats = False
            else:
                progress.planned[row[1]] = int(row[2])
        elif match := STAMP.match(line):
            stamp = datetime.strptime(" ".join(match[1].split()), "%a %b %d %H:%M:%S %Y")
            progress.began = progress.began or stamp
        elif match := START.match(line):
            rule = match[1]
        elif (match := JOBID.match(line)) and failing:  # the failed job's block names its id
            progress.running.pop(match[1], None)
            failing = False
        elif (match := JOBID.match(line)) and rule and stamp:
            progress.running[match[1]] = (rule, stamp)
            rule = None
        elif (match := FINISHED.match(line)) and match[1] in progress.running:
            name, start = progress.running.pop(match[1])
            progress.durations.setdefault(name, []).append((stamp - start).total_seconds())
        elif FAILED.match(line):
            progress.failed, failing = progress.failed + 1, True
    return progress


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def summary(progress: Progress, now: datetime) -> str:
    """One line: jobs done, running, failed, elapsed and the estimated time left."""
    total = sum(progress.planned.values())
    running: dict[str, list[float]] = {}
    for rule, start in progress.running.values():
        running.setdefault(rule, []).append((now - start).total_seconds())
    left, untimed = 0.0, []
    for rule, planned in progress.planned.items():
        finished, ages = progress.durations.get(rule, []), running.get(rule, [])
        waiting = planned - len(finished) - len(ages)  # failed jobs count as waiting: a rerun redoes them
        if not finished:
            if waiting + len(ages) > 0:
                untimed.append(f"{rule} x{waiting + len(ages)}")
            continue
        typical = statistics.median(finished)
        left += waiting * typical + sum(max(0.0, typical - age) for age in ages)
    elapsed = (now - progress.began).total_seconds() if progress.began else 0.0
    text = (f"{progress.done()} of {total} jobs done, {sum(map(len, running.values()))} running"
            f"{f', {progress.failed} failed' if progress.failed else ''}; elapsed {clock(elapsed)}; "
            f"about {clock(left / progress.cores)} left")
    return text + (f" (not yet timed: {', '.join(untimed)})" if untimed else "")


def newest_log(workdir: Path) -> Path:
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{workdir / '.snakemake' / 'log'}: no Snakemake log (has a run started here?)")
    return logs[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deqbench-progress",
                                     description="Jobs done, time elapsed and time left of a Snakemake run.")
    parser.add_argument("workdir", nargs="?", default=".", type=Path, help="where the run was started")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="print a line every SECONDS")
    args = parser.parse_args(argv)
    while True:
        log = newest_log(args.workdir)
        print(summary(parse(log.read_text(errors="replace").splitlines()), datetime.now()), flush=True)
        if not args.watch:
            return
        time.sleep(args.watch)


if __name__ == "__main__":
    main(sys.argv[1:])
