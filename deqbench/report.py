"""The report page: one self-contained HTML file (inline CSS and JavaScript, figures as
base64 PNG) that opens from disk without a network.

Per task and loss it shows the sortable leaderboard (reference rows, which train
nothing, appear under every loss), the paired comparisons of its rows
(:mod:`deqbench.statistics`) and the reconstructions of fixed test images; then the
summary figures and the provenance of the results. Every row of the leaderboard is
shown: a run that failed, is stale, invalid or not applicable keeps its row with the
reason, and a metric a run did not record is marked as missing.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from deqbench import figures, leaderboard
from deqbench.evaluation import image_columns
from deqbench.io import load_torch, read_json, write_bytes_atomic

SUMMARY_FIGURES = {
    "quality": "Every metric, mean over test images with 95% confidence intervals. A red x marks a "
               "run that failed, is stale, or did not record the metric.",
    "cost": "Quality against cost. The dashed line is the Pareto front: no other run is both "
            "cheaper and better. Times and memory compare only within one machine.",
    "equivariance": "Equivariance error under fixed rotations (the same for every run): "
                    "||f(A T_g x) - T_g f(A x)|| / ||T_g f(A x)|| over the inscribed disc, noiseless "
                    "measurements, mean over test images. Interpolation keeps even an equivariant map above zero; "
                    "the reference rows show that floor.",
    "convergence": "Relative residual of each iteration on the saved test images (median, band from "
                   "min to max): solid lines are DEQ forward solves, dotted lines unrolled iterations.",
    "learning": "Learning curves: validation PSNR over training steps of every row trained end to end, "
                "mean over its training seeds (band: lowest to highest seed). A row still gaining more "
                "than the configured amount over the last quarter (shaded) is marked undertrained: its "
                "place may change with more training; under an annealed learning rate every curve "
                "flattens at its end, so there the mark says less. The PSNR curves are for reading "
                "only: early stopping reads a run's own criterion (under EI, one without ground truth).",
    "fidelity": "DEQ runs over training: cosine between the gradient used and the implicit gradient "
                "with forward and backward solves run tight (top; dashed: Jacobian-free runs, which do "
                "not claim it), and the spectral radius of the Jacobian of the iteration at the fixed "
                "point (bottom; at one or more the fixed point is not attracting). Grey lines: the "
                "protocol's limits beyond which a run is marked unreliable; measurements left of the dotted "
                "line (step 0: the untrained initial map) are shown, never gated.",
}
RECONSTRUCTION_CAPTION = ("Fixed test images: ground truth, input (FBP / zero-filled) and every run, "
                          "best PSNR first, with the absolute error below on the scale of the input's error.")
MISSING = '<td class="gap" title="not recorded for this run" data-sort="">n/a</td>'
NOT_APPLICABLE = '<td class="na" title="does not apply to this run" data-sort="">&ndash;</td>'
EMPTY = '<td data-sort=""></td>'
METRICS = [("equivariance_error", 3, None), ("flops_per_image", 2, None), ("test_ms", 1, None),
           ("test_ms_per_draw", 1, None), ("train_min", 2, None),
           ("tune_min", 2, None), ("train_peak_mb", 1, None), ("test_peak_mb", 1, None),
           *((column, digits, None) for column, digits in leaderboard.DIGITS.items()),
           ("val_trend_last_quarter_db", 2, None)]  # after the quality columns: column, digits, CI


def metric_columns() -> list[tuple[str, int, str | None]]:
    """The page's number columns, (column, digits, interval column): every registered
    metric (:data:`deqbench.metrics.METRICS`) and the OOD PSNR with their intervals, then
    :data:`METRICS`."""
    quality = [c for c in leaderboard.quality_columns() if not c.endswith("_ci95") and c != "n_seeds"]
    return [*((c, leaderboard.digits(c), f"{c}_ci95" if c in leaderboard.intervals() else None)
              for c in [*quality, "ood_psnr"]), *METRICS]


CAP_HITS = "fixed_point_warning"  # training steps whose fixed-point solve stopped at its cap

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1600px;padding:1em 2em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav a{margin-right:1em}.note{background:#fff8e1;border-left:4px solid #f5b400;padding:.5em 1em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom;background:#f3f3f3;cursor:pointer;user-select:none}
td.text,th.text{text-align:left}td.status{white-space:normal;text-align:left;min-width:14em;max-width:22em;font-size:12px}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.gap{color:#b00;font-style:italic;text-align:center}
tr.failed,tr.stale,tr.invalid{background:#fdecea}tr.unreliable{background:#fff3e0}tr.oracle{background:#e3f2fd}tr.not-applicable{color:#888}
.badge{border-radius:3px;padding:0 4px;font-size:12px;color:#fff}
.badge.ok{background:#2e7d32}.badge.failed{background:#c62828}.badge.stale{background:#ef6c00}
.badge.invalid{background:#6a1b9a}.badge.unreliable{background:#8d6e63}.badge.oracle{background:#1565c0}.badge.not-applicable{background:#9e9e9e}
td.na{color:#999;text-align:center}.undertrained{color:#8d6e63}.scroll{overflow-x:auto}
td.win{background:#c8e6c9}td.lose{background:#ffcdd2}td.tie{color:#777}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#444}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], ascending = !th.classList.contains("sorted-asc");
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
    var key = function (row) { var v = row.cells[column].dataset.sort; return v === "" ? null : (isNaN(v) ? v : +v); };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) { return (x === null) - (y === null); }  /* missing values last */
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value != ""


def expected(column: str, row: pd.Series) -> bool:
    """Whether a run with results should have recorded ``column``: training columns for
    trained runs, fixed-point columns for DEQs, tuning time never (few methods tune);
    the oracle row has its image scores only."""
    if row["family"] == "oracle":
        return column in leaderboard.intervals()
    trained = row["loss"] != "none" and row["family"] != "reference"
    if column in (CAP_HITS, "gradient_cosine_median", "gradient_cosine_min", "gradient_cosine_initial",
                  "fidelity_unconverged_references", "spectral_radius_max") or column.startswith("train_fp_"):
        return row["family"] == "deq" and trained
    if column in ("train_min", "train_peak_mb"):
        return trained
    if column == "psnr_seed_std":  # a spread needs two seeds
        return row.get("n_seeds", 1) > 1
    if column == "val_trend_last_quarter_db":  # trained end to end (PnP and RED train a denoiser alone)
        return trained and row["family"] != "pnp"
    if column.startswith("fp_"):
        return row["family"] == "deq"
    return column != "tune_min"


def number_cell(value: object, digits: int, half: object = None) -> str:
    return f'<td data-sort="{value}">{leaderboard.fmt_ci(value, half, digits)}</td>'


def shown(row: pd.Series, column: str) -> float:
    """``row[column]`` in the unit of its label (:data:`deqbench.leaderboard.SHOWN_SCALE`)."""
    return row[column] * leaderboard.SHOWN_SCALE.get(column, 1)


def iteration_cell(row: pd.Series, column: str) -> str:
    """Mean fixed-point iterations, with the share of solves stopped at their cap."""
    capped = row.get(column.replace("_iterations", "_capped"))
    suffix = f" ({capped:.0%} capped)" if present(capped) and capped > 0 else ""
    return f'<td data-sort="{row[column]}">{row[column]:.1f}{suffix}</td>'


def text_cell(value: object, content: str | None = None) -> str:
    """A left-aligned cell sorted by ``value``, showing ``content`` (default: the value)."""
    shown = esc(value) if present(value) else ""
    return f'<td class="text" data-sort="{shown}">{shown if content is None else content}</td>'


def status_cell(row: pd.Series) -> str:
    """The status badge, followed by the reason, what the run's tuning saw and whether it
    was still improving, when there are."""
    status, reason, tuned = row["status"], row.get("reason"), row.get("tuned_on")
    badge = f'<span class="badge {esc(status.replace(" ", "-"))}">{esc(status)}</span>'
    note = f'<br><small>tuned on: {esc(tuned)}</small>' if present(tuned) else ""
    if row.get("undertrained") == "yes":
        note += (f'<br><small class="undertrained">undertrained: validation PSNR '
                 f'{row["val_trend_last_quarter_db"]:+.2f} dB over the last quarter (fitted)</small>')
    return f'<td class="status" data-sort="{esc(status)}">{badge} {esc(reason) if present(reason) else ""}{note}</td>'


def metric_cell(row: pd.Series, column: str, digits: int, half: str | None) -> str:
    """A metric of a run with results; empty for other rows, whose status says why."""
    if row["status"] not in leaderboard.SCORED:
        return EMPTY
    if not present(row.get(column)):
        return MISSING if expected(column, row) else NOT_APPLICABLE
    if column.endswith("_iterations"):
        return iteration_cell(row, column)
    return number_cell(shown(row, column), digits, row.get(half) if half else None)


def leaderboard_table(rows: pd.DataFrame, rank: dict[str, int]) -> str:
    """One sortable table; metric cells of rows that are not ok are left empty."""
    fixed_point = sorted(c for c in rows.columns if re.fullmatch(r"(train_)?fp_\w+_iterations", c))
    fixed_point += [CAP_HITS] if CAP_HITS in rows else []
    metrics = metric_columns() + [(c, 0 if c == CAP_HITS else 1, None) for c in fixed_point if rows[c].notna().any()]
    columns = ["name", "loss", "family", "status", *(column for column, _, _ in metrics)]  # status in view
    head = '<th class="">rank</th>' + "".join(
        f'<th class="{"text" if c in ("name", "loss", "family", "status") else ""}">{esc(leaderboard.label(c))}</th>'
        for c in columns)
    body = []
    for _, row in rows.iterrows():
        place = rank.get(leaderboard.entry_id(row))
        cells = [f'<td data-sort="{place}">{place}</td>' if place else EMPTY,
                 text_cell(row["name"], esc(row["name"]) if row["family"] == "oracle" else  # no folder
                           f'<a href="../../methods/{esc(row["method"])}/">{esc(row["name"])}</a>'),
                 text_cell(row["loss"]), text_cell(row["family"]), status_cell(row)]
        cells += [metric_cell(row, column, digits, half) for column, digits, half in metrics]
        body.append(f'<tr class="{esc(row["status"].replace(" ", "-"))}">{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def comparison_matrix(rows: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """Mean PSNR difference row minus column; green where the row beats the column,
    red where the column beats the row, grey where the data cannot tell."""
    ok = rows[(rows["status"] == "ok") & rows["psnr"].notna()].sort_values("psnr", ascending=False)
    if len(ok) < 2 or comparisons.empty:
        return "<p>Fewer than two runs with results: nothing to compare.</p>"
    labels = {leaderboard.entry_id(r): f'{r["name"]} ({r["loss"]})' for _, r in ok.iterrows()}
    lookup = comparisons.set_index(["entry_a", "entry_b"])
    head = "".join(f'<th class="text">{esc(label)}</th>' for label in labels.values())
    body = []
    for a, label in labels.items():
        cells = []
        for b in labels:
            if a == b:
                cells.append('<td class="tie">&middot;</td>')
                continue
            if (a, b) not in lookup.index:
                cells.append(MISSING)
                continue
            c = lookup.loc[(a, b)]
            kind = "win" if c["a_beats_b"] else "lose" if c["high"] < 0 else "tie"
            title = (f"{labels[a]} minus {labels[b]}: {c['mean']:+.2f} dB, 95% bootstrap interval "
                     f"[{c['low']:+.2f}, {c['high']:+.2f}] over {c['n']} paired test images and "
                     f"{c['seeds']}+ training seeds")
            cells.append(f'<td class="{kind}" title="{esc(title)}">{c["mean"]:+.2f}</td>')
        body.append(f'<tr><th class="text">{esc(label)}</th>{"".join(cells)}</tr>')
    return f'<table class="matrix"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def winners(rows: pd.DataFrame, rank: dict[str, int]) -> str:
    best = [f'{r["name"]} ({r["loss"]})' for _, r in rows.iterrows() if rank.get(leaderboard.entry_id(r)) == 1]
    if len(rank) < 2:
        return ""
    claim = "beats every other run" if len(best) == 1 else "are not separated from each other and none is beaten"
    return (f"<p><strong>{esc(', '.join(best))}</strong> {claim} (two-level bootstrap of the PSNR "
            "difference over seeds and paired test images, 95%).</p>")


def image_tag(png: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def figure_block(png: str | Path, caption: str) -> str:
    svg = Path(png).with_suffix(".svg").name
    return (f"<figure>{image_tag(png, caption)}<figcaption>{esc(caption)} "
            f'(<a href="figures/{esc(svg)}">vector version</a>)</figcaption></figure>')


def distinct(table: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of ``column`` over the runs that have results, as text."""
    values = table.loc[table["status"] == "ok"].get(column, pd.Series()).dropna()
    return sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in values})


def provenance(table: pd.DataFrame) -> str:
    """Each provenance column's values over the runs that have results."""
    columns = ["git_commit", "device", "threads", "hostname", "python"] + sorted(
        c for c in table.columns if c.startswith("version_"))
    items = []
    for column in columns:
        values = distinct(table, column)
        shown = ", ".join(values) if values else "not recorded"
        warn = " (results come from more than one)" if len(values) > 1 else ""
        items.append(f"<dt>{esc(column.removeprefix('version_'))}</dt><dd>{esc(shown)}{warn}</dd>")
    return f"<dl>{''.join(items)}</dl>"


def render(table: pd.DataFrame, images: pd.DataFrame, figures: dict[str, Path], seed: int) -> tuple[str, pd.DataFrame]:
    """The page, and every section's paired comparisons as one table.

    ``images``: per-image results (``task``, ``method``, ``loss``, ``split``, ``image``,
    ``psnr``); ``figures``: PNG path by name (``quality``, ``cost``, ``equivariance``,
    ``convergence`` and ``reconstructions_<task>_<loss>``).
    """
    sections, nav, all_comparisons = [], [], []
    for task, loss in leaderboard.sections(table):
        rows = leaderboard.section(table, task, loss)
        comparisons = leaderboard.section_comparisons(rows, images, seed)
        all_comparisons.append(comparisons.assign(task=task, loss=loss))
        rank = leaderboard.section_ranks(rows, comparisons)
        anchor = f"{task}-{loss}"
        nav.append(f'<a href="#{esc(anchor)}">{esc(task)}, {esc(loss)}</a>')
        recon = figures.get(f"reconstructions_{task}_{loss}")
        sections.append(
            f'<h2 id="{esc(anchor)}">{esc(task)}, loss <code>{esc(loss)}</code>, protocol version '
            f'{esc(leaderboard.protocol_versions(rows))}</h2>'
            f"{winners(rows, rank)}{leaderboard_table(rows, rank)}"
            "<h3>Paired comparisons (PSNR difference, row minus column, dB)</h3>"
            f"{comparison_matrix(rows, comparisons)}"
            + (f"<h3>Reconstructions</h3>{figure_block(recon, RECONSTRUCTION_CAPTION)}" if recon else ""))
    summary = "".join(f'<h3>{esc(name.capitalize())}</h3>{figure_block(figures[name], caption)}'
                      for name, caption in SUMMARY_FIGURES.items() if name in figures)
    devices = ", ".join(distinct(table, "device"))
    seeds = "/".join(distinct(table.assign(n_seeds=table["n_seeds"].astype("Int64")), "n_seeds")) or "1"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deqbench report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>deqbench report</h1>
<nav>{''.join(nav)}<a href="#figures">figures</a><a href="#provenance">provenance</a></nav>
<p class="note">Every trained row is {esc(seeds)} training run(s), one per seed; rows that train nothing run
once. Quality is the mean over seeds and test images &plusmn; half the width of its 95% interval from a
two-level bootstrap: each resample draws the seeds with replacement, then the test images, so the
interval counts the noise of both (Bouthillier et al. 2021, <em>Accounting for variance in machine
learning benchmarks</em>); "PSNR seed std" is the spread of the per-seed mean PSNR. OOD PSNR is on
held-out real images. Rank is one plus the number of runs that beat this one: "A beats B" only when the
95% interval of their PSNR difference excludes zero, each resample drawing each row's seeds on its own
and one set of test images for both (bootstrap seed {seed}; each pair is a separate claim, and with few
seeds or images the interval is optimistic). <strong>Times and memory compare only within one machine</strong>
(here: {esc(devices) or "not recorded"}). Click a column header to sort.</p>
{''.join(sections)}
<h2 id="figures">Figures</h2>{summary}
<h2 id="provenance">Provenance</h2>{provenance(table)}
<script>{SORT_SCRIPT}</script>
</body></html>
"""
    return page, pd.concat(all_comparisons, ignore_index=True) if all_comparisons else pd.DataFrame()


def write(leaderboard_csv: str, run_files: list[str], seed: int, protocol_file: str, figures_dir: str,
          out_html: str, out_comparisons: str) -> None:
    """The report page, its figures and the paired comparisons, from the leaderboard and
    each run's per-image results and sample reconstructions (only ``ok`` rows are drawn),
    the fidelity figure with the gates of the protocol in ``protocol_file``."""
    table = leaderboard.with_all_columns(pd.read_csv(leaderboard_csv))
    frames = [pd.DataFrame(columns=["task", "method", "loss", "seed", *image_columns()])]
    samples, fidelity, curves = {}, {}, {}
    for run, path in sorted(((read_json(p), p) for p in run_files), key=lambda pair: pair[0]["seed"]):
        key = (run["task"], run["method"], run["loss"])
        fidelity.setdefault(key, []).append(run.get("train", {}).get("fidelity", []))
        curves.setdefault(key, []).append(run.get("train", {}).get("validation", []))
        frames.append(pd.read_csv(Path(path).with_name("images.csv")).assign(
            task=key[0], method=key[1], loss=key[2], seed=run["seed"]))
        if key not in samples:  # the reconstructions of the first seed
            samples[key] = load_torch(Path(path).with_name("recons.pt"))
    images = pd.concat(frames, ignore_index=True)
    stems = {name: Path(figures_dir) / name for name in SUMMARY_FIGURES}
    pngs = {
        "quality": figures.quality_figure(table, stems["quality"])[0],
        "cost": figures.cost_figure(table, stems["cost"])[0],
        "equivariance": figures.equivariance_figure(table, stems["equivariance"])[0],
        "convergence": figures.convergence_figure(table, samples, stems["convergence"])[0],
        "fidelity": figures.fidelity_figure(table, fidelity, leaderboard.load_protocol(protocol_file)["gates"],
                                            stems["fidelity"])[0],
        "learning": figures.learning_figure(table, curves, stems["learning"])[0],
    }
    for task, loss in leaderboard.sections(table):
        name = f"reconstructions_{task}_{loss}"
        pngs[name] = figures.reconstruction_figure(table, samples, task, loss, Path(figures_dir) / name)[0]
    page, comparisons = render(table, images, pngs, seed)
    write_bytes_atomic(comparisons.to_csv(index=False).encode(), out_comparisons)
    write_bytes_atomic(page.encode(), out_html)
