import sys

import torch

from deqbench.runs import evaluate_run

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
torch.set_num_threads(snakemake.threads)
evaluate_run(task_file=snakemake.input.task, model_file=snakemake.input.get("model"),
             record_file=snakemake.input.get("record"), tuning_file=snakemake.input.get("tuning"),
             evaluation_settings=snakemake.params.evaluation, data_seed=snakemake.params.data_seed,
             out_images=snakemake.output.images, out_run=snakemake.output.run,
             out_recons=snakemake.output.recons, **snakemake.params.run)
