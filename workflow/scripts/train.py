import sys

import torch

from deqbench.runs import train_run

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
torch.set_num_threads(snakemake.threads)
train_run(task_file=snakemake.input.task, out_model=snakemake.output.model,
          out_record=snakemake.output.record, **snakemake.params.run)
