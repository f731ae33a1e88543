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
Every metric of :data:`deqbench.metrics.METRICS` gets its mean and interval (PSNR, SSIM, NMSE).
``parameters`` and ``flops_per_image`` are the evaluation's counts, ``test_ms_per_draw`` the
median time of one draw of a model with random draws.

Whether a row is ``unreliable`` or ``undertrained`` is decided by the gates of the protocol
(``config/protocol.yaml``, :func:`load_protocol`), from the raw measurements each run
recorded (:func:`fidelity_statistics`, :func:`capped_test_share`): editing the protocol
re-decides every row without retraining, and every table names the protocol version that
decided it (``protocol_version``).

This module owns the table's columns, their labels, the status order and the sections
(task x loss) that the Markdown, the report page and its figures show.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from deqbench.config import ROOT, ConfigError, load_validated
from deqbench.io import read_json, write_bytes_atomic
from deqbench.losses import LOSSES
from deqbench.methods import load_method
from deqbench.metrics import METRICS, RANKED
from deqbench.provenance import code_fingerprint
from deqbench.statistics import bootstrap_interval, compare_entries, ranks


def quality_columns() -> list[str]:
    """Each registered metric (:data:`deqbench.metrics.METRICS`) and its interval; the
    ranked metric's seed spread and the seed count after it."""
    columns = []
    for name in METRICS:
        columns += [name, f"{name}_ci95", *((f"{name}_seed_std", "n_seeds") if name == RANKED else ())]
    return columns


def summary_columns() -> list[str]:
    """The CSV's first columns."""
    return ["task", "loss", "method", "name", "family", "status", "reason", "rank", *quality_columns(),
            "ood_psnr", "ood_psnr_ci95", "n_test", "n_ood", "tuned_on", "protocol_version"]


COST_AND_RELIABILITY = ["equivariance_error", "parameters", "flops_per_image", "test_ms", "test_ms_per_draw",
                        "train_min", "tune_min", "train_peak_mb", "test_peak_mb"]


def columns() -> list[str]:
    """Every column a reader may rely on."""
    return [*summary_columns(), *COST_AND_RELIABILITY, "gradient_cosine_initial", "gradient_cosine_median",
            "gradient_cosine_min", "fidelity_unconverged_references", "spectral_radius_max", "test_capped_share",
            "val_trend_last_quarter_db", "undertrained"]


def markdown_columns() -> list[str]:
    quality = [c for c in quality_columns() if not c.endswith("_ci95")]
    return ["rank", "name", "family", *quality, "ood_psnr", "tuned_on", *COST_AND_RELIABILITY,
            "fp_forward_iterations", "train_fp_backward_iterations", "fixed_point_warning", "backward_capped_steps",
            "test_capped_share", "gradient_cosine_initial", "gradient_cosine_median", "gradient_cosine_min",
            "fidelity_unconverged_references", "spectral_radius_max", "val_trend_last_quarter_db", "undertrained",
            "status"]


LABELS = {
    "name": "method", "loss": "loss", "family": "family",
    "psnr_seed_std": "PSNR seed std", "n_seeds": "seeds",
    "ood_psnr": "OOD PSNR (dB)", "equivariance_error": "equiv. error", "test_ms": "test ms/img",
    "parameters": "parameters", "flops_per_image": "GFLOPs/img", "test_ms_per_draw": "test ms/draw",
    "train_min": "train min", "tune_min": "tune min", "train_peak_mb": "train peak MB",
    "test_peak_mb": "test peak MB", "fixed_point_warning": "train steps at cap", "status": "status",
    "backward_capped_steps": "backward solves at cap",
    "gradient_cosine_median": "grad. cosine (median)", "gradient_cosine_min": "grad. cosine (min)",
    "gradient_cosine_initial": "grad. cosine (initial, not gated)",
    "fidelity_unconverged_references": "unconverged references", "test_capped_share": "test solves not at x*",
    "tuned_on": "tuned on", "spectral_radius_max": "spectral radius (max)",
    "val_trend_last_quarter_db": "val. PSNR trend, last quarter (dB)", "undertrained": "undertrained",
}  # a metric's label is its registry's
# decimals of the reliability and size columns, in the Markdown and on the report page (others: 2)
DIGITS = {"parameters": 0, "gradient_cosine_initial": 4, "gradient_cosine_median": 4, "gradient_cosine_min": 4,
          "fidelity_unconverged_references": 0, "spectral_radius_max": 3, "test_capped_share": 2}
SHOWN_SCALE = {"flops_per_image": 1e-9}  # shown in the unit of its label (GFLOPs)
PROTOCOL = ROOT / "config" / "protocol.yaml"
STATUS_ORDER = {"ok": 0, "oracle": 1, "unreliable": 2, "failed": 3, "stale": 4, "not applicable": 5, "invalid": 6}
SCORED = ("ok", "oracle", "unreliable")  # statuses whose rows show their metrics (only ok rows are ranked)


def label(column: str) -> str:
    """A column's header: a metric's label with its direction, else :data:`LABELS`'s; a
    fixed-point statistic's is its name without ``fp_``."""
    if column in METRICS:
        return f"{METRICS[column].label} {'↑' if METRICS[column].higher_is_better else '↓'}"
    return LABELS.get(column, column.replace("fp_", "").replace("_", " "))


def digits(column: str) -> int:
    """Decimals of ``column`` in the Markdown and on the report page."""
    return METRICS[column].digits if column in METRICS else DIGITS.get(column, 2)


def with_all_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column of :func:`columns` (NaN where no run recorded it)."""
    return table.reindex(columns=list(dict.fromkeys([*table.columns, *columns()])))


def ordered(rows: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """``rows`` sorted by ``by``, then by :data:`STATUS_ORDER` (unknown statuses last),
    then best PSNR first."""
    order = rows["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER))
    return (rows.assign(_order=order)
            .sort_values([*by, "_order", RANKED], ascending=[True] * (len(by) + 1) + [False])
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


def load_protocol(path: str | Path = PROTOCOL) -> dict:
    """The protocol, validated against ``workflow/schemas/protocol.schema.yaml``; its
    changelog must end with its version, its claim ids be distinct and its claims' metrics
    be per-image columns (a registered metric or ``equivariance_error``). Errors name the
    file and the key (:class:`deqbench.config.ConfigError`)."""
    protocol = load_validated(path, "protocol")
    if protocol["changelog"][-1]["version"] != protocol["version"]:
        raise ConfigError(f"{path}: key 'changelog': its last entry is version {protocol['changelog'][-1]['version']}, "
                          f"not the protocol's version {protocol['version']}")
    claimable = [*METRICS, "equivariance_error"]
    for claim in protocol["claims"]:
        if claim["metric"] not in claimable:
            raise ConfigError(f"{path}: key 'claims' ({claim['id']}): metric '{claim['metric']}' is not one of "
                              f"{', '.join(claimable)}")
    ids = [claim["id"] for claim in protocol["claims"]]
    if len(set(ids)) < len(ids):
        raise ConfigError(f"{path}: key 'claims': ids used twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    return protocol


def protocol_versions(table: pd.DataFrame) -> str:
    """The protocol version(s) that decided ``table``'s rows, as text."""
    versions = table.get("protocol_version", pd.Series(dtype=float)).dropna()
    return ", ".join(sorted({str(int(v)) for v in versions})) or "not recorded"


GATE_STATISTICS = {"min": np.min, "median": np.median}


def fidelity_statistics(measured: list[dict], gates: dict) -> dict:
    r"""The statistics the protocol's ``gates`` read off a run's gradient-fidelity
    measurements (``train.json`` ``fidelity``, :mod:`deqbench.fidelity`), computed here
    alone, from the raw measurements.

    Measurements at steps :math:`\ge` ``gated_from_step`` are gated; earlier ones (step 0
    measures the untrained initial map) are shown, as ``gradient_cosine_initial``, never
    gated. A gated measurement whose tight reference did not converge is a failed one,
    counted in ``fidelity_unconverged_references``; the others give the worst and median
    cosine, the largest spectral radius and relative error, and ``gradient_cosine_gated``:
    the gate's ``statistic`` over the cosines of those that claim an exact gradient (the
    key ``applies_when``), NaN when none does. Empty of numbers without measurements."""
    if not measured:
        return {"fidelity_measured": False}
    start, gradient = gates["gated_from_step"], gates["gradient_cosine"]
    gated = [m for m in measured if m["step"] >= start]
    valid = [m for m in gated if m["reference_converged"]]

    def reduce(how, values) -> float:
        values = list(values)
        return float(how(values)) if values else float("nan")

    return {"fidelity_measured": bool(gated), "fidelity_unconverged_references": len(gated) - len(valid),
            "gradient_cosine_initial": reduce(min, (m["gradient_cosine"] for m in measured
                                                    if m["step"] < start and m["reference_converged"])),
            "gradient_cosine_min": reduce(min, (m["gradient_cosine"] for m in valid)),
            "gradient_cosine_median": reduce(np.median, (m["gradient_cosine"] for m in valid)),
            "gradient_cosine_gated": reduce(GATE_STATISTICS[gradient["statistic"]],
                                            (m["gradient_cosine"] for m in valid if m.get(gradient["applies_when"]))),
            "spectral_radius_max": reduce(max, (m["spectral_radius"] for m in valid)),
            "gradient_relative_error_max": reduce(max, (m["gradient_relative_error"] for m in valid))}


def fixed_budget(definition: dict, gates: dict) -> bool:
    """Whether the method's ``<fixed_budget_solve>.tol`` hyperparameter is 0: that solve
    runs a fixed number of iterations and never reports a cap."""
    solve = definition.get("hyperparameters", {}).get(gates["fixed_budget_solve"])
    return isinstance(solve, dict) and solve.get("tol") == 0


def capped_test_share(test: pd.DataFrame, budgeted: bool, gates: dict) -> float:
    """Share of the test solves not at their fixed point: stopped at their cap (any
    ``fp_*_capped`` of the image), or, ``budgeted`` (:func:`fixed_budget`), ended with a
    relative residual (``fp_<fixed_budget_solve>_residual_max``) above
    ``fixed_budget_residual_max`` or not recorded. NaN for a model without solves."""
    capped_columns = [c for c in test.columns if c.startswith("fp_") and c.endswith("_capped")]
    if not capped_columns or test.empty:
        return float("nan")
    capped = (test[capped_columns] > 0).any(axis=1)
    if budgeted:
        residual = test.get(f"fp_{gates['fixed_budget_solve']}_residual_max", pd.Series(np.nan, index=test.index))
        capped |= ~(residual <= gates["fixed_budget_residual_max"])
    return float(capped.mean())


def run_row(run: dict, images: pd.DataFrame, definition: dict, gates: dict) -> dict:
    """One run (``run.json`` + its per-image table, one training seed, its method's
    ``definition``) as a row; its quality columns are plain means (intervals come with
    :func:`combine_seeds`), its gate statistics follow the protocol's ``gates``."""
    test = images[images["split"] == "test"]
    ood = images[images["split"] == "ood"]
    train, tuning, evaluation = run.get("train", {}), run.get("tuning", {}), run.get("evaluation", {})
    row = {
        "task": run["task"], "loss": run["loss"], "method": run["method"],
        "name": run.get("name", run["method"]), "family": run.get("family", ""),
        "status": run["status"], "reason": run.get("reason", ""),
        **{name: test[name].mean() if name in test else float("nan") for name in METRICS},
        "ood_psnr": ood["psnr"].mean(),
        "n_ood": len(ood),
        "tuned_on": tuning.get("criterion", "") if tuning else "none",  # what choosing hyperparameters saw
        "equivariance_error": float(test["equivariance_error"].mean()) if "equivariance_error" in test else float("nan"),
        "n_test": len(test),
        "test_ms": float(test["seconds"].median() * 1e3) if len(test) else float("nan"),
        "test_ms_per_draw": float(test["seconds_per_draw"].median() * 1e3) if "seconds_per_draw" in test else float("nan"),
        "parameters": evaluation.get("parameters", float("nan")),
        "flops_per_image": evaluation.get("flops_per_image", float("nan")),
        "test_peak_mb": evaluation.get("test_peak_memory_mb", float("nan")),
        "train_min": train.get("train_time_s", float("nan")) / 60,
        "train_step_s": train.get("step_time_median_s", float("nan")),
        "train_step_cpu_s": train.get("step_cpu_time_median_s", float("nan")),
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
    row["test_capped_share"] = capped_test_share(test, fixed_budget(definition, gates), gates)
    row.update(fidelity_statistics(train.get("fidelity", []), gates))
    row.update({k: v for k, v in run.get("provenance", {}).items() if k != "versions"})
    row.update({f"version_{k}": v for k, v in run.get("provenance", {}).get("versions", {}).items()})
    return row


def placeholder(task: str, loss: str, method: str, definition: dict, status: str, reason: str) -> dict:
    return {"task": task, "loss": loss, "method": method, "name": definition.get("name", method),
            "family": definition.get("family", ""), "status": status, "reason": reason}


WORST_OVER_SEEDS = {"gradient_cosine_min": "min", "gradient_cosine_median": "min", "gradient_cosine_gated": "min",
                    "gradient_cosine_initial": "min", "gradient_relative_error_max": "max",
                    "spectral_radius_max": "max", "fidelity_unconverged_references": "max", "fixed_point_warning": "max",
                    "backward_capped_steps": "max", "test_capped_share": "max",
                    "train_peak_mb": "max", "test_peak_mb": "max"}  # other numbers: mean over seeds


def intervals() -> dict[str, tuple[str, str]]:
    """Column to (split, per-image metric) of every quality mean with a bootstrap interval."""
    return {**{name: ("test", name) for name in METRICS}, "ood_psnr": ("ood", "psnr")}


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
    for column, (split, metric) in intervals().items():
        if not all(metric in t for t in tables):  # recorded before the metric was registered
            continue
        scores = np.array([t.loc[t["split"] == split, metric].to_numpy() for t in tables], dtype=float)
        interval = bootstrap_interval(scores, seed=seed)
        row.update({column: interval.mean, f"{column}_ci95": (interval.high - interval.low) / 2,
                    f"{column}_low": interval.low, f"{column}_high": interval.high})
    row[f"{RANKED}_seed_std"] = frame[RANKED].std(ddof=1) if len(frame) > 1 else float("nan")
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


def unreliability(row: dict, gates: dict) -> str | None:
    """Why a DEQ run's numbers are not what it claims, by the protocol's ``gates``, or
    ``None`` (statistics of :func:`fidelity_statistics`, NaN ones not judged): more than
    ``max_unconverged_references`` failed fidelity measurements; an exact gradient whose
    ``gradient_cosine`` statistic is below its ``min``; a spectral radius of :math:`J` at
    :math:`x^\\star` of ``max_spectral_radius`` or more (not an attracting fixed point); or
    more than ``max_capped_share`` of its training steps (``fixed_point_warning``), or of
    its test solves (:func:`capped_test_share`), not at their fixed point: its output, or
    the point its gradient is taken at, is then not the fixed point the method claims. A
    fixed-budget solve is judged by its residual at test only: ``train.json`` keeps the
    mean over training steps, not each step's."""
    problems = []
    unconverged = row.get("fidelity_unconverged_references", 0)
    if unconverged > gates["max_unconverged_references"]:
        problems.append(f"{unconverged} trained fidelity measurement(s) failed, their tight reference unconverged "
                        f"(> {gates['max_unconverged_references']})")
    cosine, floor = row.get("gradient_cosine_gated", float("nan")), gates["gradient_cosine"]
    if cosine < floor["min"]:
        problems.append(f"implicit gradient cosine {cosine:.4f} against a tight solve ({floor['statistic']} over "
                        f"trained steps; < {floor['min']})")
    radius = row.get("spectral_radius_max", float("nan"))
    if radius >= gates["max_spectral_radius"]:
        problems.append(f"spectral radius of J at x* {radius:.3f} (>= {gates['max_spectral_radius']}): not contractive")
    share = gates["max_capped_share"]
    if row["steps"] and row["fixed_point_warning"] / row["steps"] > share:
        problems.append(f"{row['fixed_point_warning']:.0f} of {row['steps']} training steps stopped a "
                        f"fixed-point solve at its cap ({row['backward_capped_steps']:.0f} of them the implicit "
                        f"backward solve; > {share:.0%})")
    if row.get("test_capped_share", float("nan")) > share:
        problems.append(f"{row['test_capped_share']:.0%} of its test solves not at their fixed point (stopped at "
                        f"their cap, or a fixed budget ended above relative residual "
                        f"{gates['fixed_budget_residual_max']:g}; > {share:.0%})")
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


def undertraining(row: dict, gates: dict) -> dict:
    """``row`` with ``undertrained``: whether its validation PSNR still rose by more than
    ``undertrained_gain_db`` over the last quarter of training (:func:`last_quarter_trend`,
    mean over seeds); a row without a learning curve gets neither value. Not a failure: its
    rank may change with more training. Under an annealed rate (``lr_schedule: cosine``) the
    last quarter is flat by construction, so ``no`` then says the run settled within its
    budget, not that a larger budget would gain nothing (benchmarks/results/README.md, "What the benchmark says
    so far", measures what one would)."""
    gain = row.get("val_trend_last_quarter_db")
    if gain is not None and np.isfinite(gain):
        row["undertrained"] = "yes" if gain > gates["undertrained_gain_db"] else "no"
    return row


def build(run_files: list[str | Path], tasks: list[str], methods: dict[str, dict],
          invalid: dict[str, str], fingerprints: dict[str, str], code: str, protocol: dict,
          seed: int = 0) -> pd.DataFrame:
    """All leaderboard rows, the runs of every seed combined (:func:`combine_seeds`,
    ``seed`` seeds its bootstrap).

    ``methods`` maps folder to its ``method.yaml`` content, ``fingerprints`` to the hash
    of its current sources, ``code`` is the hash of the package code that computes
    results: a run made from other sources or code is shown as ``stale``, with no
    metrics, rather than mixed in. An ok run that fails the ``protocol``'s gates
    (:func:`unreliability`) is shown as ``unreliable``, with its metrics, and not ranked;
    every row names the protocol version.
    """
    gates = protocol["gates"]
    per_seed = defaultdict(list)
    for path in run_files:
        run = read_json(path)
        reason, images = staleness(run, fingerprints, code), None
        if reason:
            row = placeholder(run["task"], run["loss"], run["method"], methods.get(run["method"], {}),
                              "stale", reason)
        else:
            images = pd.read_csv(Path(path).with_name("images.csv"))
            row = run_row(run, images, methods.get(run["method"], {}), gates)
            reason = unreliability(row, gates) if row["status"] == "ok" else None
            if reason:
                row.update(status="unreliable", reason=reason)
        per_seed[(run["task"], run["loss"], run["method"])].append(({**row, "seed": run.get("seed")}, images))
    rows = [undertraining(combine_seeds(runs, seed), gates) for runs in per_seed.values()]
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
    table = pd.DataFrame(rows).assign(protocol_version=protocol["version"])
    table = table.reindex(columns=list(dict.fromkeys([*summary_columns(), *table.columns])))
    return ordered(table, ("task", "loss")).reset_index(drop=True)




def score_metrics() -> list[str]:
    """The per-image columns of the long table."""
    return [*METRICS, "equivariance_error", "seconds"]

SCORE_PROVENANCE = ("config_hash", "git_commit", "device", "threads")


def scores(run_files: list[str | Path], fingerprints: dict[str, str], code: str) -> pd.DataFrame:
    """Every per-image score of every current run in long format, one row per task, method,
    loss, seed, split (``test``, ``ood``), image and metric (:func:`score_metrics`), with the
    run's status (before the protocol's gates) and provenance: the table to re-analyse the
    leaderboard from (its means are the means of ``value`` over seeds and test images).
    Stale runs and runs without scores are left out."""
    frames = []
    for path in run_files:
        run = read_json(path)
        images_file = Path(path).with_name("images.csv")
        if staleness(run, fingerprints, code) or not images_file.is_file():
            continue
        images = pd.read_csv(images_file)
        metrics = [m for m in score_metrics() if m in images]
        if images.empty or not metrics:
            continue
        long = images.melt(id_vars=["split", "image"], value_vars=metrics, var_name="metric").dropna(subset=["value"])
        provenance = run.get("provenance", {})
        frames.append(long.assign(task=run["task"], method=run["method"], loss=run["loss"], seed=run.get("seed"),
                                  status=run["status"], **{k: run.get(k, provenance.get(k)) for k in SCORE_PROVENANCE}))
    columns = ["task", "method", "loss", "seed", "split", "image", "metric", "value", "status", *SCORE_PROVENANCE]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return table[columns].sort_values(columns[:7], kind="stable", ignore_index=True)


def entry_id(row: pd.Series) -> str:
    """Identifies a row within its task: method folder and loss."""
    return f"{row['method']}/{row['loss']}"


def section_comparisons(rows: pd.DataFrame, images: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Paired comparisons between the ok rows of one section on their test images, over
    their training seeds (:func:`deqbench.statistics.compare_entries`). ``images``: per-image
    PSNR with ``task``, ``method``, ``loss``, ``seed``, ``split``, ``image``."""
    ok = rows.loc[rows["status"] == "ok", ["task", "method", "loss"]]
    test = images[images["split"] == "test"].merge(ok, on=["task", "method", "loss"])
    scores = test.assign(entry=test["method"] + "/" + test["loss"])[["entry", "seed", "image", RANKED]]
    return compare_entries(scores, seed)


def section_ranks(rows: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, int]:
    """Rank of each ok row of a section with a PSNR: one plus the number of rows whose paired
    interval lies above it (:func:`deqbench.statistics.ranks`; rows no interval separates tie)."""
    return ranks(comparisons, [entry_id(r) for _, r in rows.iterrows() if r["status"] == "ok" and pd.notna(r[RANKED])])


def with_ranks(table: pd.DataFrame, images: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``table`` with ``rank``: a trained row's rank in its section (:func:`section_ranks`). A
    reference row (loss ``none``) appears in every section of its task, with a rank in each,
    so its ``rank`` is left blank here and shown per section in the Markdown and on the page."""
    table = table.assign(rank=np.nan)
    for task, loss in sections(table):
        rows = section(table, task, loss)
        place = section_ranks(rows, section_comparisons(rows, images, seed))
        trained = rows.index[rows["loss"] == loss]
        table.loc[trained, "rank"] = [place.get(entry_id(table.loc[i]), np.nan) for i in trained]
    return table


def fmt_ci(mean: float, half: float, digits: int) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if pd.isna(half) else f" ± {half:.{digits}f}")


def markdown(table: pd.DataFrame, images: pd.DataFrame | None = None, seed: int = 0) -> str:
    """One Markdown table per task x loss; reference rows (loss ``none``) appear in each,
    ranked within it when ``images`` (per-image PSNR, :func:`section_comparisons`) is given."""
    parts = ["# Leaderboard\n",
             "Gates (unreliable, undertrained): config/protocol.yaml. "
             "Mean over training seeds and test images ± half the width of the 95% two-level "
             "bootstrap interval (seeds, then images); PSNR seed std: standard deviation of the "
             "per-seed mean PSNR. Times and memory compare only within one machine.\n"]
    for task, loss in sections(table):
        rows = section(table, task, loss)
        if images is not None:
            place = section_ranks(rows, section_comparisons(rows, images, seed))
            rows["rank"] = [str(place[entry_id(r)]) if entry_id(r) in place else None for _, r in rows.iterrows()]
        for column in intervals().keys() & set(rows.columns):
            half = rows.get(f"{column}_ci95", pd.Series(np.nan, index=rows.index))
            rows[column] = [fmt_ci(m, h, digits(column)) for m, h in zip(rows[column], half)]
        rows["status"] = [s if s == "ok" else f"{s}: {r}" for s, r in zip(rows["status"], rows["reason"])]
        for column in SHOWN_SCALE.keys() & set(rows.columns):
            rows[column] = rows[column] * SHOWN_SCALE[column]
        shown_columns = [c for c in markdown_columns() if c in rows]
        shown = rows[shown_columns].rename(columns=label)
        shown = shown.astype(object).where(shown.notna(), None)  # blank, not "nan"
        parts.append(f"\n## {task}, loss `{loss}`, protocol version {protocol_versions(rows)}\n\n")
        parts.append(tabulate(shown, headers="keys", tablefmt="github", showindex=False,
                              floatfmt=[f".{digits(c)}f" for c in shown_columns], missingval=""))
        parts.append("\n")
    return "".join(parts)


def write(run_files: list[str], task_names: list[str], method_dirs: list[str],
          invalid: dict[str, str], protocol_file: str | Path, seed: int, out_csv: str, out_md: str,
          hyperparameters: dict[str, dict] | None = None, out_scores: tuple[str, str] | None = None) -> None:
    """Aggregate the runs under the protocol in ``protocol_file``; a run computed by an
    older version of its method or of the package code is marked stale. ``hyperparameters``:
    each method's as its runs had them (the config's set), its ``method.yaml``'s where absent.
    ``out_scores``: CSV and parquet paths of the long-format per-image table (:func:`scores`)."""
    methods = {Path(d).name: load_method(d) for d in method_dirs}
    definitions = {name: {**method.definition, "hyperparameters": (hyperparameters or {}).get(name, method.hyperparameters)}
                   for name, method in methods.items()}
    fingerprints = {name: method.fingerprint() for name, method in methods.items()}
    table = build(run_files, task_names, definitions, invalid, fingerprints, code_fingerprint(),
                  load_protocol(protocol_file), seed)
    long = scores(run_files, fingerprints, code_fingerprint())
    ranked = long[long["metric"] == RANKED].rename(columns={"value": RANKED})
    table = with_ranks(table, ranked, seed)
    write_bytes_atomic(table.to_csv(index=False).encode(), out_csv)
    write_bytes_atomic(markdown(table, ranked, seed).encode(), out_md)
    if out_scores:
        write_bytes_atomic(long.to_csv(index=False).encode(), out_scores[0])
        write_bytes_atomic(long.to_parquet(index=False), out_scores[1])
