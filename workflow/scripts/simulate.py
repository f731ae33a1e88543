import sys

from deqbench.runs import simulate_task

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
simulate_task(snakemake.params.task_cfg, snakemake.input.data, snakemake.input.get("ood_data"),
              snakemake.params.seed, snakemake.output.task, snakemake.output.manifest)
