import sys

from deqbench.runs import build_leaderboard

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
build_leaderboard(list(snakemake.input.runs), snakemake.params.tasks, snakemake.params.method_dirs,
                  dict(snakemake.params.invalid), snakemake.output.csv, snakemake.output.md)
