import sys
from pathlib import Path

from deqbench.runs import prepare_dataset

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
prepare_dataset(str(Path(snakemake.input[0]).parent), snakemake.params.overrides,
                snakemake.params.seed, snakemake.output.data, snakemake.output.manifest)
