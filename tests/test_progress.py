"""deqbench-progress: jobs done and time left, read off a Snakemake log."""

from datetime import datetime

from deqbench.progress import parse, summary

LOG = """Provided cores: 2
Job stats:
job          count
---------  -------
train            4
evaluate         4
leaderboard      1
total            9

[Sun Dec  6 10:00:00 2026]
localrule train:
    output: a
    jobid: 1
[Sun Dec  6 10:00:00 2026]
localrule train:
    jobid: 2
[Sun Dec  6 10:10:00 2026]
Finished jobid: 1 (Rule: train)
1 of 9 steps (11%) done
[Sun Dec  6 10:10:00 2026]
localrule evaluate:
    jobid: 3
[Sun Dec  6 10:11:00 2026]
Finished jobid: 3 (Rule: evaluate)
2 of 9 steps (22%) done
[Sun Dec  6 10:11:00 2026]
localrule train:
    jobid: 4
[Sun Dec  6 10:12:00 2026]
Error in rule train:
    message: None
    jobid: 2
"""


def test_progress_counts_jobs_and_estimates_from_each_rules_median():
    progress = parse(LOG.splitlines())
    assert progress.planned == {"train": 4, "evaluate": 4, "leaderboard": 1} and progress.cores == 2
    assert progress.done() == 2 and list(progress.running) == ["4"] and progress.failed == 1
    line = summary(progress, datetime(2026, 12, 6, 10, 14))
    # train: 2 waiting (one failed, to be rerun) x 10 min + the running one's 7 min left;
    # evaluate: 3 waiting x 1 min; over 2 cores: (27 + 3) / 2 = 15 min
    assert line == ("2 of 9 jobs done, 1 running, 1 failed; elapsed 0:14:00; about 0:15:00 left "
                    "(not yet timed: leaderboard x1)")
