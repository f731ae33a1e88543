# Aggregation of every run into the leaderboard tables, decided by the protocol's gates.
from deqbench.leaderboard import load_protocol

PROTOCOL = "config/protocol.yaml"
load_protocol(PROTOCOL)  # a malformed protocol stops the workflow at once, naming file and key
TABLE_CODE = package_inputs([PACKAGE / "leaderboard.py", PACKAGE / "statistics.py"])


rule leaderboard:
    input:
        runs=run_files("run.json"),
        protocol=PROTOCOL,  # an edit re-decides the rows, retraining nothing
        code=TABLE_CODE,  # presentation code (deqbench.provenance): an edit retrains nothing either
    output:
        csv=report("results/leaderboard.csv", caption="../report/leaderboard.rst", category="Leaderboard"),
        md="results/leaderboard.md",
        scores_csv="results/scores.csv",  # long format: one row per run, image and metric
        scores_parquet="results/scores.parquet",
    params:
        tasks=list(config["tasks"]),
        method_dirs=[str(m.folder) for m in METHODS.values()],
        invalid=INVALID_METHODS,
        hyperparameters={name: method.hyperparameters for name, method in METHODS.items()},  # as the runs had them
        seed=config["seed"],
    log:
        "results/logs/leaderboard.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/leaderboard.py"
