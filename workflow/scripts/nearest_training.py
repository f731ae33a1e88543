import sys

from deqbench.runs import nearest_training_run

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
nearest_training_run(snakemake.wildcards.task, snakemake.params.task_cfg, snakemake.input.task,
                     snakemake.params.seed, snakemake.output.images, snakemake.output.run, snakemake.output.recons)
