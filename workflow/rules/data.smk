# Datasets (datasets/<name>/dataset.yaml) and simulated measurements per task.


def task_inputs(wildcards):
    task = config["tasks"][wildcards.task]
    inputs = {"data": f"results/data/{task['dataset']}.pt"}
    if "ood_dataset" in task:
        inputs["ood_data"] = f"results/data/{task['ood_dataset']}.pt"
    return inputs


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
    script:
        "../scripts/simulate.py"
