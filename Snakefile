# deqbench: `snakemake --cores all` prepares the data, trains and evaluates every method
# in methods/ on every task under every loss it supports, and writes the leaderboard.
from snakemake.utils import min_version, validate

from deqbench.config import coerce, load_schema
from deqbench.config import validate as validate_config

min_version("9.0")


configfile: "config/config.yaml"


# --config leaves its values as strings (seeds=[0] gives ['0']): read them as the schema's
# types. Nested keys take YAML's mapping form, --config 'training={steps: 10}'.
config.update(coerce(config, load_schema("config")))
validate_config(config, "config", "config")  # one line naming the key at fault
validate(config, "workflow/schemas/config.schema.yaml")  # fills in the schema's defaults


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/leaderboard.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/scaling.smk"


rule all:
    input:
        "results/leaderboard.md",
        "results/report/index.html",
    default_target: True
