# Datasets (datasets/<name>/dataset.yaml) and simulated measurements per task.


rule prepare_dataset:
    input:
        "datasets/{dataset}/dataset.yaml",
    output:
        data="results/data/{dataset}.pt",
        manifest="results/data/{dataset}.json",
    params:
        overrides=lambda w: config["datasets"].get(w.dataset, {}),
        seed=config["seed"],
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_dataset/{dataset}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/prepare_dataset.py"


rule simulate:
    input:
        unpack(task_inputs),
    output:
        task="results/tasks/{task}.pt",
        manifest="results/tasks/{task}.json",
    params:
        task_cfg=lambda w: config["tasks"][w.task],
        seed=config["seed"],
    log:
        "results/logs/simulate/{task}.log",
    benchmark:
        "results/benchmarks/simulate/{task}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/simulate.py"
