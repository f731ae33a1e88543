# Scaling studies (target `scaling`, not part of `all`): training step time and peak
# memory as the number of measurements or of iterations grows (config `scaling:`).
from deqbench.scaling import study_points

SCALING = config.get("scaling", {"studies": {}})
SCALING_POINTS, _left_out = study_points(
    SCALING["studies"], {name: m.hyperparameters for name, m in METHODS.items()}, config["tasks"], CONFIG_TASKS
)
for _message in _left_out:
    logger.warning(_message)
SCALING_POINT = "results/scaling/{study}/{method}/{value}.json"


rule scaling_point:
    input:
        data=lambda w: f"results/data/{config['tasks'][SCALING['studies'][w.study]['task']]['dataset']}.pt",
        sources=run_sources,
    output:
        SCALING_POINT,
    params:
        study=lambda w: SCALING["studies"][w.study],
        task_cfg=lambda w: config["tasks"][SCALING["studies"][w.study]["task"]],
        method_dir=lambda w: str(METHODS[w.method].folder),
        scaling={key: value for key, value in SCALING.items() if key != "studies"},
        training=lambda w: training_settings(config["training"], SCALING["loss"]),
        seed=config["seed"],
        device=config["device"],
        shared_hyperparameters=config["hyperparameters"],
        method_hyperparameters=lambda w: config["method_hyperparameters"].get(w.method, {}),
    wildcard_constraints:
        study="|".join(SCALING["studies"]) or "$^",
        value="[0-9]+",
    threads: config["threads_per_job"]
    log:
        "results/logs/scaling/{study}/{method}/{value}.log",
    benchmark:
        "results/benchmarks/scaling/{study}/{method}/{value}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/scaling_point.py"


rule scaling:
    input:
        points=[SCALING_POINT.format(study=s, method=m, value=v) for s, m, v in SCALING_POINTS],
        code=package_inputs([PACKAGE / "scaling.py"]),
    output:
        table=report("results/scaling/scaling.csv", caption="../report/scaling.rst", category="Scaling"),
        figures=[
            report(f"results/scaling/{study}.png", caption="../report/scaling.rst", category="Scaling")
            for study in SCALING["studies"]
        ],
        vectors=[f"results/scaling/{study}.svg" for study in SCALING["studies"]],
    params:
        studies=SCALING["studies"],
    log:
        "results/logs/scaling.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/scaling.py"
