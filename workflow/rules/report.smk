# The report page (results/report/index.html), its figures and paired comparisons.
from deqbench.losses import LOSSES
from deqbench.report import SUMMARY_FIGURES

PAGE_CODE = [*TABLE_CODE, *package_inputs([PACKAGE / "report.py", PACKAGE / "figures.py"])]
REPORT_FIGURES = {name: name for name in SUMMARY_FIGURES} | {
    f"reconstructions_{task}_{loss}": "reconstructions" for task in config["tasks"] for loss in LOSSES
}


rule report:
    input:
        leaderboard="results/leaderboard.csv",
        protocol=PROTOCOL,  # its gates are drawn on the fidelity figure
        code=PAGE_CODE,
        runs=run_files("run.json"),
        images=run_files("images.csv"),
        recons=run_files("recons.pt"),
    output:
        html=report("results/report/index.html", caption="../report/index.rst", category="Report"),
        comparisons=report("results/report/comparisons.csv", caption="../report/comparisons.rst",
                           category="Report"),
        figures=[
            report(f"results/report/figures/{name}.png", caption=f"../report/{caption}.rst", category="Figures")
            for name, caption in REPORT_FIGURES.items()
        ],
        vectors=[f"results/report/figures/{name}.svg" for name in REPORT_FIGURES],
    params:
        seed=config["seed"],
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/report.py"
