r"""The seed papers' claims, each decided mechanically by the protocol.

    python benchmarks/claims.py [RESULTS_DIR] [--task ct [--task mri]] [--protocol FILE] [--copy-to DIR]

Every claim of the protocol (``config/protocol.yaml``) on each of its tasks is one pair
(claim, task): rows :math:`a` and :math:`b` of the task (method/loss), a metric, a margin
:math:`\delta` and a direction; it claims :math:`\Delta = \mu_a - \mu_b > \delta`
(``greater``) or :math:`\Delta < \delta` (``less``), :math:`\mu` a row's mean of the metric
over its training seeds and the test images the two rows share. For each pair:

1. :math:`\hat\Delta` is the difference of the two grand means and
   :math:`\Delta^*_1, \dots, \Delta^*_R` its two-level bootstrap
   (:func:`deqbench.statistics.resampled_means`, the leaderboard's procedure: in each
   resample each row's seeds are drawn on their own, one set of images for both);
2. the two-sided bootstrap p-value of :math:`H_0: \Delta = \delta` is
   :math:`p = \max\bigl(\tfrac{1}{R+1},\ \min\bigl(1,\ 2\min(\#\{\Delta^*_r \le \delta\},
   \#\{\Delta^*_r \ge \delta\}) / R\bigr)\bigr)`;
3. Holm's step-down over the family of all :math:`M` pairs the protocol lists (a pair that
   cannot be tested counts with :math:`p = 1`): with :math:`p_{(1)} \le \dots \le p_{(M)}`,
   the adjusted :math:`\tilde p_{(k)} = \max_{j \le k} \min(1, (M - j + 1)\, p_{(j)})`, and
   :math:`H_0` is rejected where :math:`\tilde p \le \alpha`: the chance of any false
   rejection in the family stays at most :math:`\alpha`;
4. the verdict is ``holds`` when :math:`H_0` is rejected and :math:`\hat\Delta` lies on the
   claimed side of :math:`\delta` and the claim's cost condition, if any, is met (its
   ``column`` of a over that of b, means over seeds, at most ``max_ratio``; else ``does not
   hold: cost ratio X > Y``); ``does not hold`` when rejected on the other side; ``not
   separated`` when not rejected; ``no verdict: <row> <status>`` when a row is not ``ok``,
   absent, or trained on other seeds than the protocol's.

Shown per pair: the unadjusted 95% percentile interval of :math:`\Delta^*`, the Holm-adjusted
one at level :math:`1 - \alpha / (M - k + 1)` for the pair of rank :math:`k` in Holm's order
(the level its test is held to), the adjusted p-value, the margin and the verdict; a row
marked ``undertrained`` is named beside its claims, the verdict words being the protocol's
alone. Then ODER's costs against DEQ-ID and DEQ-JFB (ratios of means over seeds), one
table per task, with the run's provenance (from its leaderboard rows) and the protocol
version. ``--copy-to`` also keeps the printout (``claims.md``), the leaderboard, the paired
comparisons and the learning-curve and fidelity figures there.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from deqbench.io import read_json
from deqbench.leaderboard import PROTOCOL, load_protocol, tasks_of
from deqbench.metrics import METRICS
from deqbench.statistics import resampled_means, score_tables

COSTS = ["train_step_cpu_s", "train_step_s", "train_min", "test_ms"]
CLAIM_COLUMNS = ["claim", "a - b", "metric", "claimed", "difference", "95% interval", "Holm interval", "p (Holm)",
                 "cost ratio", "seeds", "images", "verdict", "undertrained"]
DIGITS = {**{name: metric.digits for name, metric in METRICS.items()}, "equivariance_error": 4}


def per_image(results: Path, tasks: list[str]) -> pd.DataFrame:
    """Test-image scores of every run of ``tasks``: task, entry (method/loss), seed, image, scores."""
    frames = []
    for task in tasks:
        for run_file in sorted((results / "runs" / task).glob("*/*/seed*/run.json")):
            run = read_json(run_file)
            images = pd.read_csv(run_file.with_name("images.csv"))
            frames.append(images[images["split"] == "test"].assign(
                task=task, entry=f"{run['method']}/{run['loss']}", seed=run["seed"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", "entry", "seed", "image"])


def seeds_of(row: pd.Series) -> list[int]:
    """The training seeds a leaderboard row combines (its ``seeds``, read as text)."""
    seeds = row.get("seeds")
    return sorted(int(seed) for seed in seeds.split(",")) if isinstance(seeds, str) else []


def unavailable(rows: dict[str, pd.Series], entries: tuple[str, str], seeds: list[int]) -> str | None:
    """Why a pair gets no verdict (a row not ``ok``, absent, or trained on other seeds), or ``None``."""
    problems = []
    for entry in entries:
        row = rows.get(entry)
        if row is None:
            problems.append(f"{entry} absent")
        elif row["status"] != "ok":
            problems.append(f"{entry} {row['status']}")
        elif seeds_of(row) != seeds:
            problems.append(f"{entry} seeds {','.join(map(str, seeds_of(row)))} "
                            f"(protocol: {','.join(map(str, seeds))})")
    return "no verdict: " + ", ".join(problems) if problems else None


def bootstrap_test(a: pd.DataFrame, b: pd.DataFrame, margin: float, resamples: int, seed: int) -> dict:
    """``a - b`` (two seeds x images tables) on the images both have: the difference of
    the grand means, its bootstrap draws and the two-sided p-value of "difference ==
    ``margin``" (module docstring, steps 1 and 2)."""
    shared = a.columns.intersection(b.columns)
    first, second = a[shared].to_numpy(), b[shared].to_numpy()
    draws = resampled_means(first, second, seed, resamples)
    share = min(np.mean(draws <= margin), np.mean(draws >= margin))
    return {"mean": float(first.mean() - second.mean()), "draws": draws, "images": len(shared),
            "seeds": min(len(first), len(second)), "p": max(1 / (resamples + 1), min(1.0, 2 * share))}


def holm(p_values) -> tuple[np.ndarray, np.ndarray]:
    """Holm's adjusted p-values (module docstring, step 3) and each pair's rank in Holm's
    order (1: the smallest p; ties keep the given order)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    multipliers = len(p) - np.arange(len(p))
    adjusted, ranks = np.empty(len(p)), np.empty(len(p), dtype=int)
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, multipliers * p[order]))
    ranks[order] = np.arange(1, len(p) + 1)
    return adjusted, ranks


def verdict(claim: dict, rejected: bool, mean: float, cost_ratio: float) -> str:
    """The verdict on a tested pair (module docstring, step 4)."""
    if not rejected:
        return "not separated"
    claimed_side = mean > claim["margin"] if claim["direction"] == "greater" else mean < claim["margin"]
    if not claimed_side:
        return "does not hold"
    if "cost" in claim:
        limit = claim["cost"]["max_ratio"]
        if not np.isfinite(cost_ratio):
            return f"no verdict: cost {claim['cost']['column']} not recorded"
        if cost_ratio > limit:
            return f"does not hold: cost ratio {cost_ratio:.2f} > {limit:.2f}"
    return "holds"


def tested(claim: dict, task: str, board: pd.DataFrame, images: pd.DataFrame, protocol: dict) -> dict:
    """One (claim, task) pair before Holm's procedure: its :func:`bootstrap_test` and cost
    ratio, or ``p = 1`` and why it cannot be tested (its ``verdict``)."""
    seeds = sorted(protocol["seeds"])
    rows = {f"{r['method']}/{r['loss']}": r for _, r in board[board["task"] == task].iterrows()}
    reason = unavailable(rows, (claim["a"], claim["b"]), seeds)
    if reason:
        return {"p": 1.0, "verdict": reason}
    scores = images[(images["task"] == task) & images["entry"].isin([claim["a"], claim["b"]]) & images["seed"].isin(seeds)]
    tables = score_tables(scores, claim["metric"]) if claim["metric"] in scores else {}
    first, second = (tables.get(entry, pd.DataFrame()) for entry in (claim["a"], claim["b"]))
    if len(first.columns.intersection(second.columns)) < 2:
        return {"p": 1.0, "verdict": f"no verdict: fewer than 2 test images with {claim['metric']} in both rows"}
    result = bootstrap_test(first, second, claim["margin"], protocol["bootstrap"]["resamples"],
                            protocol["bootstrap"]["seed"])
    if "cost" in claim:
        column = claim["cost"]["column"]
        result["cost_ratio"] = rows[claim["a"]][column] / rows[claim["b"]][column]
    return {**result, "verdict": None}


def decide(board: pd.DataFrame, images: pd.DataFrame, protocol: dict) -> list[dict]:
    """Every (claim, task) pair of the protocol, tested and decided together (the family
    of Holm's procedure): its claim, task, verdict and, when tested, the numbers shown."""
    alpha = protocol["multiplicity"]["alpha"]
    pairs = [{"claim": claim, "task": task, **tested(claim, task, board, images, protocol)}
             for claim in protocol["claims"] for task in claim["tasks"]]
    adjusted, ranks = holm([pair["p"] for pair in pairs])
    for pair, p_adjusted, rank in zip(pairs, adjusted, ranks, strict=True):
        pair.update(p_holm=p_adjusted, holm_level=1 - alpha / (len(pairs) - rank + 1))
        if pair["verdict"] is None:
            pair["verdict"] = verdict(pair["claim"], p_adjusted <= alpha, pair["mean"], pair.get("cost_ratio", np.nan))
    return pairs


def interval(draws: np.ndarray, level: float, digits: int) -> str:
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def undertrained(board: pd.DataFrame) -> set[str]:
    """Entries (method/loss) the leaderboard marks as still improving at their step cap."""
    return {f"{r.method}/{r.loss}" for r in board.itertuples() if getattr(r, "undertrained", "no") == "yes"}


def claim_rows(pairs: list[dict], task: str, still_improving: set[str]) -> list[dict]:
    """The printed rows of one task's pairs."""
    rows = []
    for pair in (p for p in pairs if p["task"] == task):
        claim = pair["claim"]
        digits = DIGITS[claim["metric"]]
        side = ">" if claim["direction"] == "greater" else "<"
        row = {"claim": claim["text"], "a - b": f"{claim['a']} - {claim['b']}", "metric": claim["metric"],
               "claimed": f"a - b {side} {claim['margin']:+.{digits}f}"
                          + (f", {claim['cost']['column']} ratio <= {claim['cost']['max_ratio']:.2f}"
                             if "cost" in claim else "")}
        if "draws" in pair:
            row.update({"difference": f"{pair['mean']:+.{digits}f}",
                        "95% interval": interval(pair["draws"], 0.95, digits),
                        "Holm interval": f"{interval(pair['draws'], pair['holm_level'], digits)} "
                                         f"({100 * pair['holm_level']:.4g}%)",
                        "p (Holm)": f"{pair['p_holm']:.4f}", "seeds": str(pair["seeds"]), "images": str(pair["images"])})
            if "cost_ratio" in pair:
                row["cost ratio"] = f"{pair['cost_ratio']:.2f}"
        row["verdict"] = pair["verdict"]
        row["undertrained"] = ", ".join(e for e in (claim["a"], claim["b"]) if e in still_improving)
        rows.append(row)
    return rows


def cost_rows(board: pd.DataFrame) -> list[dict]:
    """ODER's costs against DEQ-ID and DEQ-JFB under each loss (ratios of means over seeds)."""
    indexed = board.set_index(["method", "loss"])
    rows = []
    for loss in ("sup", "ei"):
        for reference in ("deq-id", "deq-jfb"):
            if ("oder", loss) in indexed.index and (reference, loss) in indexed.index:
                oder, other = indexed.loc[("oder", loss)], indexed.loc[(reference, loss)]
                rows.append({"loss": loss, "ODER / ": reference,
                             **{f"{cost} ratio": f"{oder[cost] / other[cost]:.2f}" for cost in COSTS},
                             "ODER steps": oder["steps"], "reference steps": other["steps"],
                             # a ratio to a row that is not ok (e.g. solves stopped at their cap) is no cost verdict
                             "status (ODER, reference)": f"{oder['status']}, {other['status']}"})
    return rows


def as_markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    """``rows`` as a Markdown table, numbers as formatted, missing cells (an untested pair's
    numbers) blank."""
    table = pd.DataFrame(rows, columns=columns)
    return table.astype(object).where(table.notna(), "").to_markdown(index=False, disable_numparse=True)


def provenance(board: pd.DataFrame) -> str:
    columns = ["git_commit", "device", "threads", "pid_cpus", "hostname", "python",
               *sorted(c for c in board.columns if c.startswith("version_"))]
    return "; ".join(f"{c}: {', '.join(sorted(board[c].dropna().astype(str).unique()))}" for c in columns if c in board)


def report(results: Path, tasks: list[str] | None = None, protocol_file: str | Path = PROTOCOL) -> str:
    """The printout: every pair decided at once, one table per task of ``tasks`` (default:
    every task of the leaderboard)."""
    protocol = load_protocol(protocol_file)
    board = pd.read_csv(results / "leaderboard.csv", dtype={"seeds": str})
    tasks = tasks or tasks_of(board)
    pairs = decide(board, per_image(results, sorted({t for c in protocol["claims"] for t in c["tasks"]})), protocol)
    rule = protocol["multiplicity"]
    parts = [f"# The seed papers' claims, decided by protocol version {protocol['version']}\n",
             f"protocol: {protocol_file}, version {protocol['version']}; Holm over {len(pairs)} (claim, task) pairs "
             f"at alpha {rule['alpha']}; two-level bootstrap, {protocol['bootstrap']['resamples']} resamples "
             f"(seed {protocol['bootstrap']['seed']}); training seeds {protocol['seeds']}\n"]
    for task in tasks:
        rows = board[board["task"] == task]
        still_improving = undertrained(rows)
        flagged = [f"{r.method}/{r.loss} ({r.status}" + (", undertrained)" if f"{r.method}/{r.loss}" in still_improving
                                                        else ")")
                   for r in rows.itertuples() if r.status != "ok" or f"{r.method}/{r.loss}" in still_improving]
        parts += [f"\n## `{task}`\n",
                  f"run provenance: {provenance(rows)}\n",
                  as_markdown(claim_rows(pairs, task, still_improving), CLAIM_COLUMNS),
                  "\nODER's cost (ratios of means over seeds; train_step_cpu_s CPU time and train_step_s wall time of a "
                  "training step, test_ms per image):\n",
                  as_markdown(cost_rows(rows)),
                  "\nRows not ok or undertrained: " + (", ".join(flagged) or "none") + "\n"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--task", action="append", help="a task to print (repeatable; default: every task)")
    parser.add_argument("--protocol", default=PROTOCOL, type=Path)
    parser.add_argument("--copy-to", type=Path, help="keep the printout, leaderboard, comparisons and figures here")
    args = parser.parse_args(argv)
    text = report(args.results, args.task, args.protocol)
    print(text)
    if args.copy_to:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        (args.copy_to / "claims.md").write_text(text)
        for source in ("leaderboard.md", "leaderboard.csv", "report/comparisons.csv",
                       "report/figures/learning.png", "report/figures/fidelity.png"):
            shutil.copy2(args.results / source, args.copy_to / Path(source).name)


if __name__ == "__main__":
    main()
