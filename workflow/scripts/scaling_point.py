import sys

import torch

from deqbench.runs import measure_scaling_point

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
torch.set_num_threads(snakemake.threads)
measure_scaling_point(snakemake.wildcards.study, snakemake.params.study, snakemake.params.method_dir,
                      int(snakemake.wildcards.value), snakemake.params.task_cfg, snakemake.input.data,
                      snakemake.params.training, snakemake.params.scaling, snakemake.params.seed,
                      snakemake.params.device, snakemake.output[0],
                      snakemake.params.shared_hyperparameters, snakemake.params.method_hyperparameters)
