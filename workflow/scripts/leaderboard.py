import sys

from deqbench import leaderboard

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
leaderboard.write(list(snakemake.input.runs), snakemake.params.tasks, snakemake.params.method_dirs,
                  dict(snakemake.params.invalid), snakemake.input.protocol, snakemake.params.seed,
                  snakemake.output.csv, snakemake.output.md, dict(snakemake.params.hyperparameters),
                  (snakemake.output.scores_csv, snakemake.output.scores_parquet))
