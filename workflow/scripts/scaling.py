import sys
from pathlib import Path

from deqbench import scaling

sys.stderr = sys.stdout = open(snakemake.log[0], "w")
scaling.write_summary(list(snakemake.input.points), dict(snakemake.params.studies), snakemake.output.table,
                      str(Path(snakemake.output.table).parent))
