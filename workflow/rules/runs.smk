# Training, tuning on validation (methods with `tuning:`) and evaluation of one method
# on one task under one loss.


rule train:
    input:
        task="results/tasks/{task}.pt",
        sources=run_sources,
    output:
        model=f"{RUN_DIR}/model.pt",
        record=f"{RUN_DIR}/train.json",
    params:
        run=run_settings,
    wildcard_constraints:
        loss="sup|ei",
    threads: config["threads_per_job"]
    log:
        f"results/logs/train/{RUN_LOG}.log",
    benchmark:
        f"results/benchmarks/train/{RUN_LOG}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/train.py"


rule tune:
    input:
        unpack(trained_inputs),
        task="results/tasks/{task}.pt",
        sources=run_sources,
    output:
        tuning=f"{RUN_DIR}/tuning.json",
    params:
        run=run_settings,
    threads: config["threads_per_job"]
    log:
        f"results/logs/tune/{RUN_LOG}.log",
    benchmark:
        f"results/benchmarks/tune/{RUN_LOG}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/tune.py"


rule evaluate:
    input:
        unpack(trained_inputs),
        unpack(tuned_inputs),
        task="results/tasks/{task}.pt",
        sources=run_sources,
    output:
        images=f"{RUN_DIR}/images.csv",
        run=f"{RUN_DIR}/run.json",
        recons=f"{RUN_DIR}/recons.pt",
    params:
        run=run_settings,
        evaluation=config["evaluation"],
        data_seed=config["seed"],
    threads: config["threads_per_job"]
    log:
        f"results/logs/evaluate/{RUN_LOG}.log",
    benchmark:
        f"results/benchmarks/evaluate/{RUN_LOG}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/evaluate.py"


rule nearest_training:
    input:
        task="results/tasks/{task}.pt",
        sources=RESULT_CODE,
    output:
        images="results/runs/{task}/nearest-train/none/seed{seed}/images.csv",
        run="results/runs/{task}/nearest-train/none/seed{seed}/run.json",
        recons="results/runs/{task}/nearest-train/none/seed{seed}/recons.pt",
    params:
        task_cfg=lambda wildcards: config["tasks"][wildcards.task],
        seed=config["seed"],
    log:
        "results/logs/nearest_training/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/nearest_training/{task}/seed{seed}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/nearest_training.py"
