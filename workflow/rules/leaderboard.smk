# Aggregation of every run into the leaderboard tables.


rule leaderboard:
    input:
        runs=run_files("run.json"),
    output:
        csv=report("results/leaderboard.csv", caption="../report/leaderboard.rst", category="Leaderboard"),
        md="results/leaderboard.md",
    params:
        tasks=list(config["tasks"]),
        method_dirs=[str(m.folder) for m in METHODS.values()],
        invalid=INVALID_METHODS,
        limits=config["reliability"],
        seed=config["seed"],
    log:
        "results/logs/leaderboard.log",
    script:
        "../scripts/leaderboard.py"
