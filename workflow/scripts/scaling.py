import sys
from pathlib import Path

from deqbench.runs import summarise_scaling

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
summarise_scaling(list(snakemake.input), dict(snakemake.params.studies), snakemake.output.table,
                  str(Path(snakemake.output.table).parent))
