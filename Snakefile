# deqbench: `snakemake --cores all` prepares the data, trains and evaluates every method
# in methods/ on every task under every loss it supports, and writes the leaderboard.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


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
