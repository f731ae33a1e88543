import sys
from pathlib import Path

from deqbench import report

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
report.write(snakemake.input.leaderboard, list(snakemake.input.runs), snakemake.params.seed,
             snakemake.input.protocol, str(Path(snakemake.output.figures[0]).parent),
             snakemake.output.html, snakemake.output.comparisons)
