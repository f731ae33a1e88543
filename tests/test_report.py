"""The report page, built from a small fixture results table, and on the smoke DAG."""

import html
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import snakemake
from deqbench.evaluation import image_columns
from deqbench.io import save_torch
from deqbench.leaderboard import PROTOCOL, section
from deqbench.losses import LOSSES
from deqbench.report import SUMMARY_FIGURES
from deqbench.report import write as write_report

TEST_IMAGES = 6
SAMPLES = 2
NAN = math.nan

# task, loss, method, name, family, status, reason, mean test PSNR (ok rows), extras
ROWS = [
    ("ct", "none", "direct", "FBP", "reference", "ok", "", 20.0, {}),
    ("ct", "sup", "deq-id", "DEQ-ID", "deq", "ok", "", 26.0,
     {"fp_forward_iterations": 14.0, "fp_forward_capped": 0.5, "train_fp_backward_iterations": 11.0,
      "train_fp_backward_capped": 0.25, "fixed_point_warning": 2.0}),
    ("ct", "ei", "deq-id", "DEQ-ID", "deq", "failed", "step 2: loss is nan (diverged)", NAN, {}),
    ("ct", "sup", "unet", "U-Net", "post-processing", "ok", "", 24.0, {"ssim": NAN}),
    ("ct", "ei", "unet", "U-Net", "post-processing", "stale",
     "computed from an older version of the method; rerun it", NAN, {}),
    ("ct", "ei", "pnp", "PnP-PGD", "pnp", "not applicable", "supports only: sup", NAN, {}),
    ("ct", "none", "tv", "TV", "reference", "ok", "", 21.0, {"tuned_on": "validation PSNR (sees ground truth)",
                                                              "ood_psnr_ci95": 0.7}),
    ("ct", "", "broken", "broken", "", "invalid", "methods/broken/method.yaml: key 'losses': required", NAN, {}),
    ("mri", "none", "direct", "FBP", "reference", "ok", "", 22.0, {}),
    ("mri", "sup", "unet", "U-Net", "post-processing", "ok", "", 22.0, {}),
    ("mri", "sup", "deq-id", "DEQ-ID", "deq", "unreliable", "spectral radius of J at x* 1.200 (>= 1.0): not contractive",
     25.0, {"spectral_radius_max": 1.2, "gradient_cosine_min": 0.95}),
]
SCORED = ("ok", "unreliable")


def image_psnr(mean: float, image: int) -> float:
    """Per-image PSNR around ``mean``, varying over images like real test images do."""
    return mean + 2.0 * math.sin(image)


def write_run(run_dir, task, method, loss, status, mean, with_history):
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"task": task, "method": method, "loss": loss, "status": status, "seed": 0}))
    if status not in SCORED:
        pd.DataFrame(columns=image_columns()).to_csv(run_dir / "images.csv", index=False)
        save_torch({}, run_dir / "recons.pt")
        return
    images = pd.DataFrame({"split": "test", "image": range(TEST_IMAGES), "seconds": 0.01,
                           "psnr": [image_psnr(mean, i) for i in range(TEST_IMAGES)], "ssim": 0.8})
    images.to_csv(run_dir / "images.csv", index=False)
    truth = torch.rand(SAMPLES, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    save_torch({"index": torch.arange(SAMPLES), "truth": truth, "initial": truth + 0.2, "estimate": truth + 0.05,
                "residuals": [[0.5 / 2 ** k for k in range(12)]] * SAMPLES if with_history else [[]] * SAMPLES},
               run_dir / "recons.pt")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of a leaderboard with an ok, failed, stale, not applicable and invalid
    row, a missing metric and a DEQ with a residual history: its folder and page."""
    tmp_path = tmp_path_factory.mktemp("results")
    rows, run_files = [], []
    for task, loss, method, name, family, status, reason, mean, extra in ROWS:
        ok = status in SCORED
        rows.append({"task": task, "loss": loss, "method": method, "name": name, "family": family,
                     "status": status, "reason": reason, "psnr": mean, "psnr_ci95": 0.5 if ok else NAN, "n_seeds": 1,
                     "ssim": 0.8 if ok else NAN, "ssim_ci95": 0.02 if ok else NAN,
                     "ood_psnr": mean - 1, "equivariance_error": 0.1 if ok else NAN, "n_test": TEST_IMAGES,
                     "test_ms": 12.0 if ok else NAN, "train_min": 1.5 if ok and loss != "none" else NAN,
                     "train_peak_mb": 40.0 if ok and loss != "none" else NAN, "test_peak_mb": 8.0 if ok else NAN,
                     "git_commit": "abc123" if ok else NAN, "device": "cpu (x86_64)" if ok else NAN,
                     "threads": 1 if ok else NAN, "version_torch": "2.14.1" if ok else NAN, **extra})
        if status in (*SCORED, "failed", "stale"):
            run_dir = tmp_path / "runs" / task / method / loss
            write_run(run_dir, task, method, loss, status, mean, with_history=family == "deq")
            run_files.append(str(run_dir / "run.json"))
    pd.DataFrame(rows).to_csv(tmp_path / "leaderboard.csv", index=False)
    out = tmp_path / "report"
    write_report(str(tmp_path / "leaderboard.csv"), run_files, 0, PROTOCOL, str(out / "figures"),
                 str(out / "index.html"), str(out / "comparisons.csv"))
    return out, (out / "index.html").read_text()


def figure_names(tasks):
    return [*SUMMARY_FIGURES, *(f"reconstructions_{t}_{loss}" for t in tasks for loss in LOSSES)]


def test_page_contains_every_row_and_figure(built):
    out, page = built
    sections = {(t, loss): [r for r in ROWS if r[0] == t and r[1] in (loss, "none", "")]
                for t in ("ct", "mri") for loss in LOSSES}
    assert page.count("<tr class=") == sum(len(rows) for rows in sections.values())
    for task, loss in sections:
        assert f'id="{task}-{loss}"' in page
    for _, _, method, name, _, _, reason, _, _ in ROWS:
        assert f'href="../../methods/{method}/"' in page and f">{name}</a>" in page
        assert html.escape(reason) in page
    names = figure_names(["ct", "mri"])
    assert page.count('src="data:image/png;base64,') == len(names)
    for name in names:
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")


def test_a_section_has_its_loss_reference_and_invalid_rows_with_results_first():
    table = pd.DataFrame([{"task": t, "loss": loss or NAN, "method": m, "status": s, "psnr": p}
                          for t, loss, m, _, _, s, _, p, _ in ROWS])  # an invalid row's loss reads back as NaN
    rows = section(table, "ct", "ei")
    assert list(rows["method"] + "/" + rows["status"]) == [
        "tv/ok", "direct/ok", "deq-id/failed", "unet/stale", "pnp/not applicable", "broken/invalid"]
    assert list(section(table, "ct", "sup")["method"]) == ["deq-id", "unet", "tv", "direct", "broken"]


def test_page_is_self_contained_and_sortable(built):
    _, page = built
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<style>" in page and "<script>" in page and 'class="sortable"' in page
    assert "compare only within one machine" in page
    assert "abc123" in page and "2.14.1" in page and "cpu (x86_64)" in page


def test_failed_stale_and_missing_results_are_marked(built):
    _, page = built
    for status in ("failed", "stale", "not applicable", "invalid"):
        assert f'<span class="badge {status.replace(" ", "-")}">{status}</span>' in page
    unet_row = re.search(r'<tr class="ok">(?:(?!</tr>).)*>U-Net</a>(?:(?!</tr>).)*</tr>', page).group(0)
    assert 'class="gap"' in unet_row  # its SSIM is missing
    deq_row = re.search(r'<tr class="ok">(?:(?!</tr>).)*>DEQ-ID</a>(?:(?!</tr>).)*</tr>', page).group(0)
    assert "14.0 (50% capped)" in deq_row and "11.0 (25% capped)" in deq_row and '">2</td>' in deq_row
    assert "train backward iterations" in page and "train steps at cap" in page
    tv_row = re.search(r'<tr class="ok">(?:(?!</tr>).)*>TV</a>(?:(?!</tr>).)*</tr>', page).group(0)
    assert "tuned on: validation PSNR (sees ground truth)" in tv_row and "20.00 ± 0.70" in tv_row
    assert 'title="does not apply to this run"' in unet_row  # not a DEQ: no fixed point


def test_wins_are_claimed_only_where_the_paired_interval_excludes_zero(built):
    out, page = built
    comparisons = pd.read_csv(out / "comparisons.csv")
    ct_sup = comparisons[(comparisons["task"] == "ct") & (comparisons["loss"] == "sup")].set_index(
        ["entry_a", "entry_b"])
    assert ct_sup.loc[("deq-id/sup", "direct/none"), "mean"] == pytest.approx(6.0)
    assert ct_sup.loc[("deq-id/sup", "unet/sup"), "a_beats_b"]
    mri = comparisons[(comparisons["task"] == "mri") & (comparisons["loss"] == "sup")]
    assert not mri["a_beats_b"].any()  # identical per-image PSNR: a tie
    assert "<strong>DEQ-ID (sup)</strong> beats every other run" in page
    assert "<strong>FBP (none), U-Net (sup)</strong> are not separated" in page


def test_figures_render_without_any_results(tmp_path):
    pd.DataFrame([{"task": "ct", "loss": "sup", "method": "deq-id", "name": "DEQ-ID", "family": "deq",
                   "status": "failed", "reason": "build failed"}]).to_csv(tmp_path / "leaderboard.csv", index=False)
    write_report(str(tmp_path / "leaderboard.csv"), [], 0, PROTOCOL, str(tmp_path / "figures"),
                 str(tmp_path / "index.html"), str(tmp_path / "comparisons.csv"))
    page = (tmp_path / "index.html").read_text()
    assert "build failed" in page and "nothing to compare" in page
    assert page.count('src="data:image/png;base64,') == len(figure_names(["ct"]))


@pytest.mark.slow
def test_smoke_report_page_and_snakemake_report(smoke_run):
    table = pd.read_csv(smoke_run / "results" / "leaderboard.csv")
    page = (smoke_run / "results" / "report" / "index.html").read_text()
    for name in table.loc[table["family"] != "oracle", "name"].unique():
        assert f">{name}</a>" in page
    assert "nearest training image" in page
    images = pd.read_csv(next((smoke_run / "results" / "runs").glob("ct/direct/none/seed0/images.csv")))
    assert images.loc[images["split"] == "test", "equivariance_error"].between(0, 2).all()
    assert table.loc[table["status"] == "ok", "equivariance_error"].notna().all()
    snakemake(smoke_run, "--profile", "profiles/smoke", "--report", "report.html")
    assert (smoke_run / "report.html").stat().st_size > 0


@pytest.mark.slow
def test_smoke_scaling_target_measures_every_point(smoke_run):
    snakemake(smoke_run, "--profile", "profiles/smoke", "scaling")
    points = pd.read_csv(smoke_run / "results" / "scaling" / "scaling.csv")
    assert len(points) == 10 and (points["status"] == "ok").all()  # 2 views x 3 methods, 2 iterations x 2
    assert (points["step_time_median_s"] > 0).all() and np.isfinite(points["train_peak_memory_mb"]).all()
    deq = points[(points["study"] == "iterations") & (points["method"] == "deq-id")]
    assert (deq["fp_forward_iterations"] == deq["value"]).all()  # tol 0: exactly the swept iterations
    for study in ("measurements", "iterations"):
        assert (smoke_run / "results" / "scaling" / f"{study}.svg").exists()


def test_an_unreliable_row_keeps_its_numbers_but_no_rank(built):
    _, page = built
    row = re.search(r'<tr class="unreliable">(?:(?!</tr>).)*</tr>', page).group(0)
    assert '<span class="badge unreliable">unreliable</span>' in row and "not contractive" in row
    assert ">25.00" in row and ">1.200<" in row and ">0.9500<" in row
    assert row.startswith('<tr class="unreliable"><td data-sort=""></td>')  # no rank: it is not compared
