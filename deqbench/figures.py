"""The report's figures, each written as PNG and SVG (matplotlib / seaborn).

Every function takes the leaderboard table, with every column of
:func:`deqbench.leaderboard.columns` (and, where it needs pictures, the saved
sample reconstructions keyed by ``(task, method, loss)``), draws whatever exists and
says in the figure what is missing, so that a partial benchmark still renders.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from deqbench import leaderboard  # noqa: E402
from deqbench.metrics import METRICS, psnr  # noqa: E402
from deqbench.statistics import pareto_front  # noqa: E402
from deqbench.tasks import magnitude  # noqa: E402

LOSS_MARKERS = {"sup": "o", "ei": "s", "none": "^"}
LOSS_COLORS = dict(zip(LOSS_MARKERS, sns.color_palette("colorblind", len(LOSS_MARKERS))))
GAP_STATUSES = ("failed", "stale")
COSTS = {
    "test_ms": "test time per image (ms)",
    "train_min": "training time (min)",
    "peak_mb": "peak memory, train or test (MB)",
}
SAMPLE_TILE_INCHES = 1.25
SAMPLE_DPI = 80


@contextmanager
def style():
    """Seaborn's paper style, and byte-stable SVG output."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), \
            plt.rc_context({"svg.hashsalt": "deqbench", "svg.fonttype": "none"}):
        yield


def save(figure: plt.Figure, stem: str | Path, dpi: int = 110) -> tuple[Path, Path]:
    """Write ``stem.png`` (at ``dpi``) and ``stem.svg`` and close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    figure.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    figure.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    return png, svg


def entry_label(row: pd.Series) -> str:
    """``name (loss)``; reference rows, which train nothing, keep their name alone."""
    return row["name"] if row["loss"] in ("none", "") or pd.isna(row["loss"]) else f"{row['name']} ({row['loss']})"


def method_colors(table: pd.DataFrame) -> dict[str, tuple]:
    """One colour per method name, the same in every figure."""
    names = sorted(table["name"].dropna().unique())
    return dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "tab20", len(names))))


def ok_rows(table: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """Rows of runs that succeeded (of one task when given)."""
    rows = table[table["status"] == "ok"]
    return rows if task is None else rows[rows["task"] == task]


def task_columns(table: pd.DataFrame, width: float, height: float, rows: int = 1):
    """The table's tasks and a figure with one column of ``rows`` panels per task (one
    column when there is no task)."""
    tasks = leaderboard.tasks_of(table)
    columns = max(len(tasks), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    return tasks, figure, axes


def note(axis: plt.Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty panel."""
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=axis.transAxes, color="0.4")
    axis.set_xticks([])
    axis.set_yticks([])


def quality_figure(table: pd.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Every registered metric's mean (:data:`deqbench.metrics.METRICS`, one row of panels
    each) with 95% intervals, per task (columns), method (x) and loss (marker); a failed or
    stale run, or one missing the metric, is an x on the axis."""
    with style():
        tasks, figure, axes = task_columns(table, 5.5, 3.25, rows=len(METRICS))
        for column, task in enumerate(tasks):
            here = table[(table["task"] == task) & (table["status"] != "invalid")]
            names = sorted(here["name"].dropna().unique())
            for row, metric in enumerate(METRICS):
                axis, label = axes[row, column], leaderboard.label(metric)
                for offset, loss in zip((-0.2, 0.0, 0.2), LOSS_MARKERS):
                    runs = here[here["loss"] == loss]
                    shown = runs[(runs["status"] == "ok") & runs[metric].notna()]
                    x = [names.index(n) + offset for n in shown["name"]]
                    axis.errorbar(x, shown[metric], yerr=shown[f"{metric}_ci95"].fillna(0), fmt=LOSS_MARKERS[loss],
                                  color=LOSS_COLORS[loss], capsize=3)
                    gaps = runs[runs["status"].isin(GAP_STATUSES) | ((runs["status"] == "ok") & runs[metric].isna())]
                    if len(gaps):
                        axis.plot([names.index(n) + offset for n in gaps["name"]], [0] * len(gaps), "x",
                                  color="red", transform=axis.get_xaxis_transform(), clip_on=False)
                axis.set_xticks(range(len(names)), names, rotation=30, ha="right", rotation_mode="anchor")
                axis.set_xlim(-0.5, len(names) - 0.5)
                axis.set_ylabel(label)
                axis.set_title(f"{task}: {label}")
        if not tasks:
            note(axes[0, 0], "no results")
        handles = [plt.Line2D([], [], color=LOSS_COLORS[loss], marker=m, linestyle="", label=f"loss {loss}")
                   for loss, m in LOSS_MARKERS.items()]
        handles.append(plt.Line2D([], [], color="red", marker="x", linestyle="", label="no result"))
        figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        figure.tight_layout()
        return save(figure, stem)


def cost_figure(table: pd.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """PSNR against each cost, per task; the Pareto front (cheaper and better than every
    other point) is the dashed line. Runs without that cost are left out and counted."""
    tasks = leaderboard.tasks_of(table)
    colors = method_colors(table)
    rows = ok_rows(table).assign(peak_mb=lambda t: t[["train_peak_mb", "test_peak_mb"]].max(axis=1))
    with style():
        figure, axes = plt.subplots(max(len(tasks), 1), len(COSTS), figsize=(4.2 * len(COSTS), 3.4 * max(len(tasks), 1)),
                                    squeeze=False)
        for r, task in enumerate(tasks):
            here = rows[(rows["task"] == task) & rows["psnr"].notna()]
            for c, (cost, label) in enumerate(COSTS.items()):
                axis = axes[r, c]
                shown = here[np.isfinite(here[cost].astype(float))]
                for _, run in shown.iterrows():
                    axis.scatter(run[cost], run["psnr"], color=colors[run["name"]],
                                 marker=LOSS_MARKERS.get(run["loss"], "o"), s=36, zorder=3)
                front = shown[pareto_front(shown[cost], shown["psnr"])].sort_values(cost)
                axis.plot(front[cost], front["psnr"], "--", color="0.3", drawstyle="steps-post", zorder=2)
                if len(shown) and (shown[cost] > 0).all():
                    axis.set_xscale("log")
                    axis.xaxis.set_minor_formatter(NullFormatter())
                missing = len(here) - len(shown)
                axis.set_title(f"{task}" + (f" ({missing} without this cost)" if missing else ""), fontsize=9)
                axis.set_xlabel(label)
                axis.set_ylabel(leaderboard.label("psnr"))
        if not tasks:
            note(axes[0, 0], "no results")
        handles = [plt.Line2D([], [], color=color, marker="o", linestyle="", label=name)
                   for name, color in colors.items() if name in set(rows["name"])]
        handles += [plt.Line2D([], [], color="0.3", marker=m, linestyle="", label=f"loss {loss}")
                    for loss, m in LOSS_MARKERS.items()]
        handles.append(plt.Line2D([], [], color="0.3", linestyle="--", label="Pareto front"))
        figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        figure.tight_layout()
        return save(figure, stem)


def equivariance_figure(table: pd.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Mean relative equivariance error per run (lower: closer to rotation-equivariant)."""
    colors = method_colors(table)
    with style():
        tasks, figure, axes = task_columns(table, 5, 4)
        for column, task in enumerate(tasks):
            axis = axes[0, column]
            here = ok_rows(table, task)
            here = here[here["equivariance_error"].notna()].sort_values("equivariance_error")
            if here.empty:
                note(axis, f"{task}: no equivariance error recorded")
                continue
            labels = [entry_label(r) for _, r in here.iterrows()]
            axis.barh(labels, here["equivariance_error"], color=[colors[n] for n in here["name"]])
            axis.invert_yaxis()
            axis.set_xlabel(r"$\|f(AT_gx) - T_gf(Ax)\| \,/\, \|T_gf(Ax)\|$")
            axis.set_title(task)
        figure.tight_layout()
        return save(figure, stem)


def padded(histories: list[list[float]]) -> np.ndarray:
    """Residual histories of unequal length as rows of an array padded with NaN."""
    length = max(len(h) for h in histories)
    return np.array([h + [np.nan] * (length - len(h)) for h in histories], dtype=float)


def convergence_figure(table: pd.DataFrame, samples: dict[tuple, dict], stem: str | Path) -> tuple[Path, Path]:
    """Relative residual against iteration (median over the sample images, band from
    min to max), per task, for every run whose model exposes its iteration map; DEQ
    runs without a recorded history are named in the panel."""
    colors = method_colors(table)
    with style():
        tasks, figure, axes = task_columns(table, 5.5, 4)
        for column, task in enumerate(tasks):
            axis = axes[0, column]
            drawn, without = 0, []
            for _, run in ok_rows(table, task).iterrows():
                histories = [h for h in samples.get((task, run["method"], run["loss"]), {}).get("residuals", []) if h]
                if not histories:
                    if run["family"] == "deq":
                        without.append(entry_label(run))
                    continue
                curves = padded(histories)
                steps = np.arange(1, curves.shape[1] + 1)
                linestyle = "-" if run["family"] == "deq" else ":"
                axis.plot(steps, np.nanmedian(curves, axis=0), linestyle, color=colors[run["name"]],
                          marker=LOSS_MARKERS.get(run["loss"], "o"), markersize=3, label=entry_label(run))
                axis.fill_between(steps, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0),
                                  color=colors[run["name"]], alpha=0.15)
                drawn += 1
            if not drawn:
                note(axis, f"{task}: no run recorded a residual history"
                     + (f" (DEQ runs without one: {', '.join(without)})" if without else ""))
                continue
            axis.set_yscale("log")
            axis.set_xlabel("iteration (evaluations of the map)")
            axis.set_ylabel(r"$\|F(x_k) - x_k\| \,/\, \|F(x_k)\|$")
            axis.set_title(task + (f"; no history: {', '.join(without)}" if without else ""), fontsize=9)
            axis.legend(fontsize=7)
        figure.tight_layout()
        return save(figure, stem)


def fidelity_figure(table: pd.DataFrame, fidelity: dict[tuple, list[list[dict]]], gates: dict,
                    stem: str | Path) -> tuple[Path, Path]:
    """Per task (columns), over training steps (one line per training seed, ``fidelity``
    maps a row's (task, method, loss) to each seed's measurements): the cosine between each DEQ run's gradient
    and the tightly solved implicit gradient (top; dashed for Jacobian-free runs, which
    claim no more than an approximation) and the spectral radius of :math:`J` at
    :math:`x^\\star` (bottom), with the protocol's ``gates`` as grey lines and a dotted
    line at the first gated step (:mod:`deqbench.fidelity`); a measurement whose tight
    reference did not converge is left out (the leaderboard counts it)."""
    colors = method_colors(table)
    with style():
        tasks, figure, axes = task_columns(table, 5.5, 3.2, rows=2)
        for column, task in enumerate(tasks):
            cosine, radius = axes[0, column], axes[1, column]
            drawn = 0
            for _, run in table[(table["task"] == task) & table["status"].isin(leaderboard.SCORED)].iterrows():
                for seed, measured in enumerate(m for m in fidelity.get((task, run["method"], run["loss"]), []) if m):
                    measured = [m for m in measured if m.get("reference_converged", True)]
                    if not measured:
                        continue
                    steps = [m["step"] for m in measured]
                    linestyle = "-" if measured[0]["exact_gradient_claimed"] else "--"
                    for axis, key in ((cosine, "gradient_cosine"), (radius, "spectral_radius")):
                        axis.plot(steps, [m[key] for m in measured], linestyle, color=colors[run["name"]],
                                  marker=LOSS_MARKERS.get(run["loss"], "o"), markersize=3,
                                  label=None if seed else entry_label(run))  # one legend entry for all seeds
                    drawn += 1
            if not drawn:
                note(cosine, f"{task}: no run measured its gradient fidelity")
                note(radius, "")
                continue
            cosine.axhline(gates["gradient_cosine"]["min"], color="0.5", linewidth=0.8)
            radius.axhline(gates["max_spectral_radius"], color="0.5", linewidth=0.8)
            for axis in (cosine, radius):
                axis.axvline(gates["gated_from_step"], color="0.5", linewidth=0.8, linestyle=":")
            cosine.set_ylabel("gradient cosine to tight implicit")
            radius.set_ylabel(r"spectral radius of $J$ at $x^\star$")
            radius.set_xlabel("training step")
            cosine.set_title(task, fontsize=9)
            cosine.legend(fontsize=7)
        figure.tight_layout()
        return save(figure, stem)


def learning_figure(table: pd.DataFrame, curves: dict[tuple, list[list[dict]]], stem: str | Path) -> tuple[Path, Path]:
    """Validation PSNR over training steps, one panel per task and loss (rows: losses),
    for every row trained end to end: the mean over its seeds, the band from the lowest
    to the highest seed. ``curves`` maps (task, method, loss) to each seed's curve
    (:mod:`deqbench.training`); the shaded last quarter is where ``undertrained`` is decided."""
    colors = method_colors(table)
    losses = [loss for loss in LOSS_MARKERS if loss != "none"]
    with style():
        tasks, figure, axes = task_columns(table, 5.5, 3.2, rows=len(losses))
        for column, task in enumerate(tasks):
            for row_index, loss in enumerate(losses):
                axis = axes[row_index, column]
                drawn = 0
                for _, run in table[(table["task"] == task) & (table["loss"] == loss)
                                    & table["status"].isin(leaderboard.SCORED)].iterrows():
                    seeds = [c for c in curves.get((task, run["method"], loss), []) if c]
                    if not seeds:
                        continue
                    steps = [point["step"] for point in seeds[0]]
                    values = np.array([[point["val_psnr"] for point in c] for c in seeds if len(c) == len(steps)])
                    axis.plot(steps, values.mean(axis=0), color=colors[run["name"]], marker=LOSS_MARKERS[loss],
                              markersize=3, label=run["name"] + (" (undertrained)" if run.get("undertrained") == "yes" else ""))
                    axis.fill_between(steps, values.min(axis=0), values.max(axis=0), color=colors[run["name"]], alpha=0.15)
                    drawn += 1
                    last = steps[-1]
                if not drawn:
                    note(axis, f"{task}, {loss}: no learning curve recorded")
                    continue
                axis.axvspan(0.75 * last, last, color="0.92", zorder=0)
                axis.set_title(f"{task}, loss {loss}", fontsize=9)
                axis.set_xlabel("training step")
                axis.set_ylabel("validation PSNR (dB)")
                axis.legend(fontsize=7)
        figure.tight_layout()
        return save(figure, stem)


def reconstruction_figure(table: pd.DataFrame, samples: dict[tuple, dict], task: str, loss: str,
                          stem: str | Path) -> tuple[Path, Path]:
    """Ground truth, input and every ok run of ``task`` under ``loss`` (and the reference
    rows) on the saved test images, best PSNR first, each with its error map below
    (same colour scale across a row, set by the input's error)."""
    here = leaderboard.section(table, task, loss)
    runs = [(entry_label(r), samples[(task, r["method"], r["loss"])]) for _, r in
            here[here["status"] == "ok"].iterrows()
            if samples.get((task, r["method"], r["loss"]), {}).get("estimate") is not None]
    with style(), plt.rc_context({"axes.grid": False}):
        if not runs:
            figure, axis = plt.subplots(figsize=(4, 1.5))
            note(axis, f"{task}, loss {loss}: no reconstructions saved")
            return save(figure, stem)
        first = runs[0][1]
        truths, inputs = magnitude(first["truth"]).numpy(), magnitude(first["initial"]).numpy()
        columns = [("ground truth", truths), ("input", inputs)] + [(label, magnitude(s["estimate"]).numpy())
                                                                    for label, s in runs]
        count = len(truths)
        figure, axes = plt.subplots(2 * count, len(columns), squeeze=False,
                                    figsize=(SAMPLE_TILE_INCHES * len(columns), SAMPLE_TILE_INCHES * 2 * count))
        for image in range(count):
            truth = truths[image].astype(np.float64)
            error_max = np.percentile(np.abs(inputs[image] - truth), 99)
            for column, (label, images) in enumerate(columns):
                top, bottom = axes[2 * image, column], axes[2 * image + 1, column]
                top.imshow(images[image], cmap="gray", vmin=truth.min(), vmax=truth.max(), interpolation="nearest")
                lines = [label if image == 0 else "",
                         f"{psnr(truth, images[image].astype(np.float64)):.1f} dB" if column else ""]
                top.set_title("\n".join(line for line in lines if line), fontsize=6)
                if column:
                    bottom.imshow(np.abs(images[image] - truth), cmap="magma", vmin=0, vmax=error_max,
                                  interpolation="nearest")
                else:
                    bottom.text(0.5, 0.5, f"test image {image}\n|error|\n0 to {error_max:.2f}", ha="center",
                                va="center", fontsize=6, transform=bottom.transAxes)
                for axis in (top, bottom):
                    axis.set_xticks([])
                    axis.set_yticks([])
        figure.suptitle(f"{task}, loss {loss}", fontsize=9)
        figure.tight_layout()
        return save(figure, stem, dpi=SAMPLE_DPI)


def scaling_figure(points: pd.DataFrame, title: str, axis_label: str, stem: str | Path) -> tuple[Path, Path]:
    """Median training step time and peak training memory against the swept value, one
    line per method, DEQ points labelled with their forward iterations (of the last
    step); failed points are listed under the panels."""
    with style():
        figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
        ok = points[points["status"] == "ok"]
        for column, (metric, label) in enumerate((("step_time_median_s", "median training step (s)"),
                                                  ("train_peak_memory_mb", "peak training memory (MB)"))):
            axis = axes[0, column]
            for method, runs in ok.groupby("method"):
                runs = runs.sort_values("value")
                axis.plot(runs["value"], runs[metric], "o-", label=method)
                if "fp_forward_iterations" in runs:
                    for run in runs[runs["fp_forward_iterations"].notna()].itertuples():
                        axis.annotate(f"{run.fp_forward_iterations:.0f} it", (run.value, getattr(run, metric)),
                                      textcoords="offset points", xytext=(3, 3), fontsize=6, color="0.4")
            axis.set_xticks(sorted(points["value"].unique()))
            axis.set_xlabel(axis_label)
            axis.set_ylabel(label)
            if len(ok):
                axis.legend(fontsize=8)
            else:
                note(axis, "no point measured")
        failed = points[points["status"] != "ok"]
        if len(failed):
            figure.text(0.01, -0.02, "failed: " + "; ".join(f"{r.method} at {r.value}: {r.reason}"
                                                           for r in failed.itertuples()),
                        fontsize=7, color="red", va="top", wrap=True)
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        return save(figure, stem)
