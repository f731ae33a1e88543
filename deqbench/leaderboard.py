"""The leaderboard: one row per task x loss x method, as CSV and Markdown.

A trained row gathers one run per training seed. Quality is the mean over seeds and
test images with the 95% interval of a two-level bootstrap over seeds, then images
(:mod:`deqbench.statistics`); ``psnr_seed_std`` is the standard deviation of the
per-seed mean PSNR. ``ood_psnr`` is the mean PSNR (with its interval) on the held-out
real images and ``equivariance_error`` the mean relative error under rotations
(:mod:`deqbench.equivariance`). Costs are means over seeds, peak memory and the
reliability measures the worst seed's. A row is ``ok`` only when every seed is; otherwise
it takes the worst status of its seeds, with their reasons. A method that failed, whose
folder is invalid, or that does not support a loss still gets its row, with the reason.

This module owns the table's columns, their labels, the status order and the sections
(task x loss) that the Markdown, the report page and its figures show.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from deqbench.io import read_json, write_bytes_atomic
from deqbench.losses import LOSSES
from deqbench.methods import load_method
from deqbench.provenance import code_fingerprint
from deqbench.statistics import bootstrap_interval

SUMMARY_COLUMNS = ["task", "loss", "method", "name", "family", "status", "reason",
                   "psnr", "psnr_ci95", "psnr_seed_std", "n_seeds", "ssim", "ssim_ci95", "ood_psnr",
                   "ood_psnr_ci95", "n_test", "n_ood", "tuned_on"]  # the CSV's first columns
COLUMNS = [*SUMMARY_COLUMNS, "equivariance_error", "test_ms", "train_min", "tune_min",
           "train_peak_mb", "test_peak_mb", "gradient_cosine_median", "gradient_cosine_min",
           "spectral_radius_max", "val_trend_last_quarter_db", "undertrained"]  # every column a reader may rely on
MARKDOWN_COLUMNS = ["name", "family", "psnr", "psnr_seed_std", "n_seeds", "ssim", "ood_psnr", "tuned_on", "equivariance_error", "test_ms",
                    "train_min", "tune_min", "train_peak_mb", "test_peak_mb", "fp_forward_iterations",
                    "train_fp_backward_iterations", "fixed_point_warning", "backward_capped_steps",
                    "gradient_cosine_median", "gradient_cosine_min",
                    "spectral_radius_max", "val_trend_last_quarter_db", "undertrained", "status"]
LABELS = {
    "name": "method", "loss": "loss", "family": "family", "psnr": "PSNR (dB)", "ssim": "SSIM",
    "psnr_seed_std": "PSNR seed std", "n_seeds": "seeds",
    "ood_psnr": "OOD PSNR (dB)", "equivariance_error": "equiv. error", "test_ms": "test ms/img",
    "train_min": "train min", "tune_min": "tune min", "train_peak_mb": "train peak MB",
    "test_peak_mb": "test peak MB", "fixed_point_warning": "train steps at cap", "status": "status",
    "backward_capped_steps": "backward solves at cap",
    "gradient_cosine_median": "grad. cosine (median)", "gradient_cosine_min": "grad. cosine (min)",
    "tuned_on": "tuned on", "spectral_radius_max": "spectral radius (max)",
    "val_trend_last_quarter_db": "val. PSNR trend, last quarter (dB)", "undertrained": "undertrained",
}
# decimals of the reliability columns, in the Markdown and on the report page (others: 2)
DIGITS = {"gradient_cosine_median": 4, "gradient_cosine_min": 4, "spectral_radius_max": 3}
STATUS_ORDER = {"ok": 0, "oracle": 1, "unreliable": 2, "failed": 3, "stale": 4, "not applicable": 5, "invalid": 6}
SCORED = ("ok", "oracle", "unreliable")  # statuses whose rows show their metrics (only ok rows are ranked)


def label(column: str) -> str:
    """A column's header; a fixed-point statistic's is its name without ``fp_``."""
    return LABELS.get(column, column.replace("fp_", "").replace("_", " "))


def with_all_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column of :data:`COLUMNS` (NaN where no run recorded it)."""
    return table.reindex(columns=list(dict.fromkeys([*table.columns, *COLUMNS])))


def ordered(rows: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """``rows`` sorted by ``by``, then by :data:`STATUS_ORDER` (unknown statuses last),
    then best PSNR first."""
    order = rows["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER))
    return (rows.assign(_order=order)
            .sort_values([*by, "_order", "psnr"], ascending=[True] * (len(by) + 1) + [False])
            .drop(columns="_order"))


def tasks_of(table: pd.DataFrame) -> list[str]:
    return sorted(table["task"].dropna().unique())


def sections(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Every (task, loss) section of the table, in display order."""
    return [(task, loss) for task in tasks_of(table) for loss in LOSSES]


def section(table: pd.DataFrame, task: str, loss: str) -> pd.DataFrame:
    """The rows of one section: the task's rows under ``loss``, its reference rows (loss
    ``none``, which train nothing) and its invalid methods (no loss), :func:`ordered`."""
    return ordered(table[(table["task"] == task) & table["loss"].fillna("").isin([loss, "none", ""])])


def run_row(run: dict, images: pd.DataFrame) -> dict:
    """One run (``run.json`` + its per-image table, one training seed) as a row; its
    quality columns are plain means (intervals come with :func:`combine_seeds`)."""
    test = images[images["split"] == "test"]
    ood = images[images["split"] == "ood"]
    train, tuning = run.get("train", {}), run.get("tuning", {})
    row = {
        "task": run["task"], "loss": run["loss"], "method": run["method"],
        "name": run.get("name", run["method"]), "family": run.get("family", ""),
        "status": run["status"], "reason": run.get("reason", ""),
        "psnr": test["psnr"].mean(), "ssim": test["ssim"].mean(), "ood_psnr": ood["psnr"].mean(),
        "n_ood": len(ood),
        "tuned_on": tuning.get("criterion", "") if tuning else "none",  # what choosing hyperparameters saw
        "equivariance_error": float(test["equivariance_error"].mean()) if "equivariance_error" in test else float("nan"),
        "n_test": len(test),
        "test_ms": float(test["seconds"].median() * 1e3) if len(test) else float("nan"),
        "test_peak_mb": run.get("evaluation", {}).get("test_peak_memory_mb", float("nan")),
        "train_min": train.get("train_time_s", float("nan")) / 60,
        "train_step_s": train.get("step_time_median_s", float("nan")),
        "train_peak_mb": train.get("train_peak_memory_mb", float("nan")),
        "tune_min": tuning.get("tune_time_s", float("nan")) / 60,
        "steps": train.get("steps"), "batch_size": train.get("batch_size"),
        "val_psnr_final": train.get("val_psnr_final", float("nan")),
        "val_trend_last_quarter_db": last_quarter_trend(train.get("validation", []), train.get("steps")),
        "seed": run.get("seed"), "config_hash": run.get("config_hash"),
    }
    row.update({f"tuned_{name}": value for name, value in tuning.get("chosen", {}).items()})
    for column in test.columns:
        if column.startswith("fp_"):
            row[column] = float(test[column].mean())
    row.update({f"train_{key}": value for key, value in train.items() if key.startswith("fp_")})
    row["fixed_point_warning"] = train.get("fixed_point_warning", float("nan"))
    row["backward_capped_steps"] = train.get("backward_capped_steps", float("nan"))
    for key in ("gradient_cosine_median", "gradient_cosine_min", "gradient_relative_error_max", "spectral_radius_max"):
        row[key] = train.get(key, float("nan"))
    row["fidelity_measured"] = "fidelity" in train
    row["exact_gradient_claimed"] = train.get("exact_gradient_claimed", False)
    row.update({k: v for k, v in run.get("provenance", {}).items() if k != "versions"})
    row.update({f"version_{k}": v for k, v in run.get("provenance", {}).get("versions", {}).items()})
    return row


def placeholder(task: str, loss: str, method: str, definition: dict, status: str, reason: str) -> dict:
    return {"task": task, "loss": loss, "method": method, "name": definition.get("name", method),
            "family": definition.get("family", ""), "status": status, "reason": reason}


WORST_OVER_SEEDS = {"gradient_cosine_min": "min", "gradient_cosine_median": "min", "gradient_relative_error_max": "max",
                    "spectral_radius_max": "max", "fixed_point_warning": "max", "backward_capped_steps": "max",
                    "train_peak_mb": "max", "test_peak_mb": "max"}  # other numbers: mean over seeds
INTERVALS = {"psnr": ("test", "psnr"), "ssim": ("test", "ssim"), "ood_psnr": ("ood", "psnr")}


def worst_status(statuses) -> str:
    return max(statuses, key=lambda status: STATUS_ORDER.get(status, len(STATUS_ORDER)))


def combine_seeds(per_seed: list[tuple[dict, pd.DataFrame | None]], seed: int) -> dict:
    """One leaderboard row from the runs of one method, loss and task, one per training
    seed (each a :func:`run_row` and its per-image table, ``None`` for a run without
    results). Its status is the worst of its seeds', with each other seed's reason;
    its quality columns have two-level bootstrap intervals (``seed`` seeds the
    bootstrap); see the module docstring for the other columns."""
    frame = pd.DataFrame([row for row, _ in per_seed]).sort_values("seed", kind="stable")
    row = frame.iloc[0].to_dict()  # names, settings and provenance of the first seed
    row.update(status=worst_status(frame["status"]), n_seeds=len(frame),
               seeds=",".join(str(s) for s in frame["seed"]))
    if len(frame) > 1 and row["status"] != "ok":
        row["reason"] = "; ".join(f"seed {s}: {status}: {reason}" for s, status, reason
                                  in zip(frame["seed"], frame["status"], frame["reason"]) if status != "ok")
    if row["status"] not in SCORED:
        return {key: row.get(key) for key in ("task", "loss", "method", "name", "family", "status", "reason",
                                              "n_seeds", "seeds")}
    numbers = frame.select_dtypes("number").drop(columns=["seed"], errors="ignore")
    row.update({column: getattr(numbers[column], WORST_OVER_SEEDS.get(column, "mean"))()
                for column in numbers})
    tables = [images.sort_values("image") for _, images in sorted(per_seed, key=lambda pair: pair[0]["seed"])]
    for column, (split, metric) in INTERVALS.items():
        scores = np.array([t.loc[t["split"] == split, metric].to_numpy() for t in tables], dtype=float)
        interval = bootstrap_interval(scores, seed=seed)
        row.update({column: interval.mean, f"{column}_ci95": (interval.high - interval.low) / 2,
                    f"{column}_low": interval.low, f"{column}_high": interval.high})
    row["psnr_seed_std"] = frame["psnr"].std(ddof=1) if len(frame) > 1 else float("nan")
    return row


def unsupported(definition: dict) -> str:
    """Why a method has no row under a loss it does not list."""
    return f"supports only: {', '.join(definition['losses'])}"


def staleness(run: dict, fingerprints: dict[str, str], code: str) -> str | None:
    """Why ``run`` was computed by other code than the current one, or ``None``."""
    if run.get("method_sha256") != fingerprints.get(run["method"]):
        return "computed from an older version of the method; rerun it"
    if run.get("code_sha256") != code:
        return "computed by an older version of the benchmark's code (deqbench.provenance); rerun it"
    return None


def unreliability(row: dict, limits: dict) -> str | None:
    """Why a DEQ run's numbers are not what it claims (config ``reliability``), or ``None``:
    its implicit gradient far from the tightly solved one (median cosine over its measured
    steps below ``min_median_gradient_cosine``; a Jacobian-free gradient claims no more
    than an approximation and is not held to it), a spectral radius of :math:`J` at :math:`x^\\star` of
    ``max_spectral_radius`` or more (not an attracting fixed point), or more than
    ``max_capped_share`` of its training steps (``fixed_point_warning``), or of its test
    solves (``fp_forward_capped``), with a solve stopped at its cap: its output, or the
    point its gradient is taken at, is then not the fixed point the method claims, forward
    or backward, implicit or Jacobian-free. A solve with tolerance 0 runs a fixed budget
    and is never capped."""
    problems = []
    if row["fidelity_measured"] and not np.isfinite(row["gradient_cosine_min"]):
        problems.append("no tight reference solve converged: gradient fidelity and spectral radius unknown")
    elif row["fidelity_measured"]:
        floor = limits["min_median_gradient_cosine"]
        if row["exact_gradient_claimed"] and not row["gradient_cosine_median"] >= floor:
            problems.append(f"implicit gradient median cosine {row['gradient_cosine_median']:.3f} against a "
                            f"tight solve (< {floor})")
        if not row["spectral_radius_max"] < limits["max_spectral_radius"]:
            problems.append(f"spectral radius of J at x* {row['spectral_radius_max']:.3f} "
                            f"(>= {limits['max_spectral_radius']}): not contractive")
    share = limits["max_capped_share"]
    if row["steps"] and row["fixed_point_warning"] / row["steps"] > share:
        problems.append(f"{row['fixed_point_warning']:.0f} of {row['steps']} training steps stopped a "
                        f"fixed-point solve at its cap ({row['backward_capped_steps']:.0f} of them the implicit "
                        f"backward solve; > {share:.0%})")
    if row.get("fp_forward_capped", 0) > share:
        problems.append(f"{row['fp_forward_capped']:.0%} of its test solves stopped at their cap (> {share:.0%})")
    return "; ".join(problems) or None


def last_quarter_trend(curve: list[dict], steps: int | None) -> float:
    """Validation PSNR gained over the last quarter of training, read off the least-squares
    line through the learning curve from its last point at or before 75% of ``steps`` to
    its end (slope times that span): every checkpoint of the quarter weighs in, so one
    noisy validation score at either end does not decide it, as it would decide the
    difference of the two ends. NaN without two such points."""
    if not curve or not steps:
        return float("nan")
    start = max((p["step"] for p in curve if p["step"] <= 0.75 * steps), default=curve[0]["step"])
    late = [p for p in curve if p["step"] >= start]
    if len(late) < 2:
        return float("nan")
    step, psnr = np.array([p["step"] for p in late], dtype=float), np.array([p["val_psnr"] for p in late])
    return float(np.polyfit(step, psnr, 1)[0] * (step[-1] - step[0]))


def undertraining(row: dict, limits: dict) -> dict:
    """``row`` with ``undertrained``: whether its validation PSNR still rose by more than
    ``undertrained_gain_db`` over the last quarter of training (:func:`last_quarter_trend`,
    mean over seeds); a row without a learning curve gets neither value. Not a failure: its
    rank may change with more training. Under an annealed rate (``lr_schedule: cosine``) the
    last quarter is flat by construction, so ``no`` then says the run settled within its
    budget, not that a larger budget would gain nothing (README, "What the benchmark says
    so far", measures what one would)."""
    gain = row.get("val_trend_last_quarter_db")
    if gain is not None and np.isfinite(gain):
        row["undertrained"] = "yes" if gain > limits["undertrained_gain_db"] else "no"
    return row


def build(run_files: list[str | Path], tasks: list[str], methods: dict[str, dict],
          invalid: dict[str, str], fingerprints: dict[str, str], code: str, limits: dict,
          seed: int = 0) -> pd.DataFrame:
    """All leaderboard rows, the runs of every seed combined (:func:`combine_seeds`,
    ``seed`` seeds its bootstrap).

    ``methods`` maps folder to its ``method.yaml`` content, ``fingerprints`` to the hash
    of its current sources, ``code`` is the hash of the package code that computes
    results: a run made from other sources or code is shown as ``stale``, with no
    metrics, rather than mixed in. An ok run that fails the reliability ``limits``
    (:func:`unreliability`) is shown as ``unreliable``, with its metrics, and not ranked.
    """
    per_seed = defaultdict(list)
    for path in run_files:
        run = read_json(path)
        reason, images = staleness(run, fingerprints, code), None
        if reason:
            row = placeholder(run["task"], run["loss"], run["method"], methods.get(run["method"], {}),
                              "stale", reason)
        else:
            images = pd.read_csv(Path(path).with_name("images.csv"))
            row = run_row(run, images)
            reason = unreliability(row, limits) if row["status"] == "ok" else None
            if reason:
                row.update(status="unreliable", reason=reason)
        per_seed[(run["task"], run["loss"], run["method"])].append(({**row, "seed": run.get("seed")}, images))
    rows = [undertraining(combine_seeds(runs, seed), limits) for runs in per_seed.values()]
    for task in tasks:
        for method, definition in methods.items():
            if task not in definition.get("tasks", [task]):
                continue
            for loss in LOSSES:
                if definition["losses"] != ["none"] and loss not in definition["losses"]:
                    rows.append(placeholder(task, loss, method, definition, "not applicable",
                                            unsupported(definition)))
        for method, reason in invalid.items():
            rows.append(placeholder(task, "", method, {}, "invalid", reason))
    table = pd.DataFrame(rows)
    table = table.reindex(columns=list(dict.fromkeys([*SUMMARY_COLUMNS, *table.columns])))
    return ordered(table, ("task", "loss")).reset_index(drop=True)


def fmt_ci(mean: float, half: float, digits: int) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if pd.isna(half) else f" ± {half:.{digits}f}")


def markdown(table: pd.DataFrame) -> str:
    """One Markdown table per task x loss; reference rows (loss ``none``) appear in each."""
    parts = ["# Leaderboard\n",
             "Mean over training seeds and test images ± half the width of the 95% two-level "
             "bootstrap interval (seeds, then images); PSNR seed std: standard deviation of the "
             "per-seed mean PSNR. Times and memory compare only within one machine.\n"]
    for task, loss in sections(table):
        rows = section(table, task, loss)
        rows["psnr"] = [fmt_ci(m, h, 2) for m, h in zip(rows["psnr"], rows["psnr_ci95"])]
        rows["ssim"] = [fmt_ci(m, h, 3) for m, h in zip(rows["ssim"], rows["ssim_ci95"])]
        rows["ood_psnr"] = [fmt_ci(m, h, 2) for m, h in zip(rows["ood_psnr"], rows["ood_psnr_ci95"])]
        rows["status"] = [s if s == "ok" else f"{s}: {r}" for s, r in zip(rows["status"], rows["reason"])]
        columns = [c for c in MARKDOWN_COLUMNS if c in rows]
        shown = rows[columns].rename(columns=label)
        shown = shown.astype(object).where(shown.notna(), None)  # blank, not "nan"
        parts.append(f"\n## {task}, loss `{loss}`\n\n")
        parts.append(tabulate(shown, headers="keys", tablefmt="github", showindex=False,
                              floatfmt=[f".{DIGITS.get(c, 2)}f" for c in columns], missingval=""))
        parts.append("\n")
    return "".join(parts)


def write(run_files: list[str], task_names: list[str], method_dirs: list[str],
          invalid: dict[str, str], limits: dict, seed: int, out_csv: str, out_md: str) -> None:
    """Aggregate the runs; a run computed by an older version of its method or of the
    package code is marked stale."""
    methods = {Path(d).name: load_method(d) for d in method_dirs}
    fingerprints = {name: method.fingerprint() for name, method in methods.items()}
    table = build(run_files, task_names, {n: m.definition for n, m in methods.items()}, invalid, fingerprints,
                  code_fingerprint(), limits, seed)
    write_bytes_atomic(table.to_csv(index=False).encode(), out_csv)
    write_bytes_atomic(markdown(table).encode(), out_md)
