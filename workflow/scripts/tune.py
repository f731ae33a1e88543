import sys

import torch

from deqbench.runs import tune_run

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
torch.set_num_threads(snakemake.threads)
tune_run(task_file=snakemake.input.task, model_file=snakemake.input.get("model"),
         record_file=snakemake.input.get("record"), out_tuning=snakemake.output.tuning,
         **snakemake.params.run)
