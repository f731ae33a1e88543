"""The leaderboard: one row per task x loss x method, as CSV and Markdown.

Quality is the mean over test images with a 95% Student-t confidence interval,
:math:`\\bar q \\pm t_{0.975, n-1}\\, s / \\sqrt{n}`; ``ood_psnr`` is the mean PSNR on
the held-out real images and ``equivariance_error`` the mean relative error under
rotations (:mod:`deqbench.equivariance`). A method that failed, whose folder is
invalid, or that does not support a loss still gets its row, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from deqbench.io import read_json
from deqbench.losses import LOSSES

TABLE_COLUMNS = {
    "name": "method", "family": "family", "psnr": "PSNR (dB)", "ssim": "SSIM",
    "ood_psnr": "OOD PSNR", "equivariance_error": "equiv. error", "test_ms": "test ms/img",
    "train_min": "train min", "tune_min": "tune min",
    "train_peak_mb": "train MB", "test_peak_mb": "test MB",
    "fp_forward_iterations": "fwd its", "train_fp_backward_iterations": "bwd its (train)",
    "fixed_point_warning": "cap hits (train)", "status": "status",
}


SUMMARY_COLUMNS = ["task", "loss", "method", "name", "family", "status", "reason",
                   "psnr", "psnr_ci95", "ssim", "ssim_ci95", "ood_psnr", "n_test"]
STATUS_ORDER = {"ok": 0, "failed": 1, "stale": 2, "not applicable": 3, "invalid": 4}


def mean_ci(values) -> tuple[float, float]:
    """Mean and 95% Student-t half-width (NaN half-width for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def run_row(run: dict, images: pd.DataFrame) -> dict:
    """Aggregate one run (``run.json`` + its per-image table) into a leaderboard row."""
    test = images[images["split"] == "test"]
    ood = images[images["split"] == "ood"]
    psnr, psnr_ci = mean_ci(test["psnr"])
    ssim, ssim_ci = mean_ci(test["ssim"])
    train, tuning = run.get("train", {}), run.get("tuning", {})
    row = {
        "task": run["task"], "loss": run["loss"], "method": run["method"],
        "name": run.get("name", run["method"]), "family": run.get("family", ""),
        "status": run["status"], "reason": run.get("reason", ""),
        "psnr": psnr, "psnr_ci95": psnr_ci, "ssim": ssim, "ssim_ci95": ssim_ci,
        "ood_psnr": float(ood["psnr"].mean()) if len(ood) else float("nan"),
        "equivariance_error": float(test["equivariance_error"].mean()) if "equivariance_error" in test else float("nan"),
        "n_test": len(test),
        "test_ms": float(test["seconds"].median() * 1e3) if len(test) else float("nan"),
        "test_peak_mb": run.get("evaluation", {}).get("test_peak_memory_mb", float("nan")),
        "train_min": train.get("train_time_s", float("nan")) / 60,
        "train_step_s": train.get("step_time_median_s", float("nan")),
        "train_peak_mb": train.get("train_peak_memory_mb", float("nan")),
        "tune_min": tuning.get("tune_time_s", float("nan")) / 60,
        "steps": train.get("steps"), "batch_size": train.get("batch_size"),
        "seed": run.get("seed"), "config_hash": run.get("config_hash"),
    }
    row.update({f"tuned_{name}": value for name, value in tuning.get("chosen", {}).items()})
    for column in test.columns:
        if column.startswith("fp_"):
            row[column] = float(test[column].mean())
    row.update({f"train_{key}": value for key, value in train.items() if key.startswith("fp_")})
    row["fixed_point_warning"] = train.get("fixed_point_warning", float("nan"))
    row.update({k: v for k, v in run.get("provenance", {}).items() if k != "versions"})
    row.update({f"version_{k}": v for k, v in run.get("provenance", {}).get("versions", {}).items()})
    return row


def placeholder(task: str, loss: str, method: str, spec: dict, status: str, reason: str) -> dict:
    return {"task": task, "loss": loss, "method": method, "name": spec.get("name", method),
            "family": spec.get("family", ""), "status": status, "reason": reason}


def unsupported(spec: dict) -> str:
    """Why a method has no row under a loss it does not list."""
    why = " (its denoiser is trained on clean images)" if spec.get("training") == "denoiser" else ""
    return f"supports only: {', '.join(spec['losses'])}{why}"


def build(run_files: list[str | Path], tasks: list[str], methods: dict[str, dict],
          invalid: dict[str, str], fingerprints: dict[str, str]) -> pd.DataFrame:
    """All leaderboard rows.

    ``methods`` maps folder to its ``method.yaml`` content, ``fingerprints`` to the hash
    of its current sources: a run made from other sources is shown as ``stale``, with no
    metrics, rather than mixed in.
    """
    rows = []
    for path in run_files:
        run = read_json(path)
        if run.get("method_sha256") != fingerprints.get(run["method"]):
            rows.append(placeholder(run["task"], run["loss"], run["method"], methods.get(run["method"], {}),
                                    "stale", "computed from an older version of the method; rerun it"))
            continue
        rows.append(run_row(run, pd.read_csv(Path(path).with_name("images.csv"))))
    for task in tasks:
        for method, spec in methods.items():
            if task not in spec.get("tasks", [task]):
                continue
            for loss in LOSSES:
                if spec["losses"] != ["none"] and loss not in spec["losses"]:
                    rows.append(placeholder(task, loss, method, spec, "not applicable", unsupported(spec)))
        for method, reason in invalid.items():
            rows.append(placeholder(task, "", method, {}, "invalid", reason))
    table = pd.DataFrame(rows)
    table = table.reindex(columns=list(dict.fromkeys([*SUMMARY_COLUMNS, *table.columns])))
    table["_order"] = table["status"].map(STATUS_ORDER)
    table = table.sort_values(["task", "loss", "_order", "psnr"], ascending=[True, True, True, False])
    return table.drop(columns="_order").reset_index(drop=True)


def fmt_ci(mean: float, half: float, digits: int) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if pd.isna(half) else f" ± {half:.{digits}f}")


def markdown(table: pd.DataFrame) -> str:
    """One Markdown table per task x loss; reference rows (loss ``none``) appear in each."""
    parts = ["# Leaderboard\n",
             "Mean over test images ± 95% confidence half-width. Times and memory compare "
             "only within one machine.\n"]
    for task in sorted(table["task"].dropna().unique()):
        here = table[table["task"] == task]
        for loss in LOSSES:
            rows = here[here["loss"].isin([loss, "none", ""])].copy()
            rows = rows.sort_values(["status", "psnr"], key=lambda c: c.map(STATUS_ORDER) if c.name == "status" else -c)
            rows["psnr"] = [fmt_ci(m, h, 2) for m, h in zip(rows["psnr"], rows["psnr_ci95"])]
            rows["ssim"] = [fmt_ci(m, h, 3) for m, h in zip(rows["ssim"], rows["ssim_ci95"])]
            rows["status"] = [s if s == "ok" else f"{s}: {r}" for s, r in zip(rows["status"], rows["reason"])]
            shown = rows[[c for c in TABLE_COLUMNS if c in rows]].rename(columns=TABLE_COLUMNS)
            parts.append(f"\n## {task}, loss `{loss}`\n\n")
            parts.append(tabulate(shown, headers="keys", tablefmt="github", showindex=False,
                                  floatfmt=".2f", missingval=""))
            parts.append("\n")
    return "".join(parts)
