"""The seed papers' claims, as a finished run measures them.

    python benchmarks/claims.py [RESULTS_DIR] [--task ct] [--copy-to DIR]

Each claim is a paired difference between two rows of one task, over their training
seeds and shared test images, with its 95% two-level bootstrap interval
(:mod:`deqbench.statistics`, the leaderboard's procedure; seeds drawn per row, images
shared): PSNR in dB, and for equivariance the relative error under rotations. The
verdict is ``holds`` when the interval lies on the claimed side of zero, ``reversed``
when it lies on the other side, ``not separated`` otherwise; a claim that needs a row
that is not ``ok`` says so instead, and one on an ``undertrained`` row is marked
provisional, unless more training of that row can only widen the difference it shows
(:func:`training_caveat`). ODER's cost claim adds the ratios of its training step time,
training time and test time to DEQ-ID's and DEQ-JFB's (means over seeds).

Printed with the run's provenance (commit, device, threads, libraries, from its
leaderboard rows). ``--copy-to`` also keeps the printout (``claims.md``), the
leaderboard, the paired comparisons and the learning-curve and fidelity figures there.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from deqbench.io import read_json
from deqbench.statistics import paired_interval, score_tables

# (claim, row a, row b, column, claimed sign of a - b): rows are method/loss of one task
CLAIMS = [
    ("DEQ-ID above DEQ-JFB under EI", "deq-id/ei", "deq-jfb/ei", "psnr", +1),
    ("DEQ-ID: EI close to supervised (gap)", "deq-id/ei", "deq-id/sup", "psnr", 0),
    ("EI-trained DEQ-ID above unrolling", "deq-id/ei", "unrolled/ei", "psnr", +1),
    ("EI-trained DEQ-ID above PnP-PGD", "deq-id/ei", "pnp/ei", "psnr", +1),
    ("EI-trained DEQ-ID above RED-GD", "deq-id/ei", "red/ei", "psnr", +1),
    ("EI-trained DEQ-ID above U-Net", "deq-id/ei", "unet/ei", "psnr", +1),
    ("ODER at a small PSNR cost to DEQ-ID (EI)", "oder/ei", "deq-id/ei", "psnr", 0),
    ("ODER at a small PSNR cost to DEQ-ID (sup)", "oder/sup", "deq-id/sup", "psnr", 0),
    ("ODER against DEQ-JFB, same gradient (EI)", "oder/ei", "deq-jfb/ei", "psnr", 0),
    ("EI-trained DEQ-ID more equivariant than supervised", "deq-id/ei", "deq-id/sup", "equivariance_error", -1),
]
COSTS = ["train_step_s", "train_min", "test_ms"]


def per_image(results: Path, task: str) -> pd.DataFrame:
    """Test-image scores of every run of ``task``: entry (method/loss), seed, image, scores."""
    frames = []
    for run_file in sorted((results / "runs" / task).glob("*/*/seed*/run.json")):
        run = read_json(run_file)
        images = pd.read_csv(run_file.with_name("images.csv"))
        frames.append(images[images["split"] == "test"].assign(entry=f"{run['method']}/{run['loss']}", seed=run["seed"]))
    if not frames:
        raise SystemExit(f"{results / 'runs' / task}: no evaluated run (run.json with images.csv)")
    return pd.concat(frames, ignore_index=True)


def verdict(interval, sign: int) -> str:
    if sign == 0:
        return "measured"
    if not np.isfinite(interval.low):
        return "no interval"
    if not interval.excludes_zero:
        return "not separated"
    return "holds" if np.sign(interval.mean) == sign else "reversed"


def training_caveat(still_improving: list[str], a: str, interval, column: str) -> str:
    """What more training of the rows still improving could do to a verdict on ``a - b``.

    A verdict on an ``undertrained`` row is provisional, except in one case: when only one
    row is still improving and its training can only move the PSNR difference further from
    zero (the row above is the one improving), the sign is settled and the interval's near
    end is a bound on the converged difference (assuming more training does not lower that
    row's test PSNR, as its rising validation PSNR says)."""
    if not still_improving:
        return ""
    names = ", ".join(still_improving)
    if column == "psnr" and len(still_improving) == 1 and interval.excludes_zero:
        rising = +1 if still_improving == [a] else -1  # the sign more training pushes a - b towards
        if np.sign(interval.mean) == rising:
            bound = interval.low if rising > 0 else interval.high
            side = "above" if rising > 0 else "below"
            return (f" (settled: only {names} is undertrained and it is the upper row; "
                    f"converged, a - b stays {side} {bound:+.2f} dB)")
    return f" (provisional: {names} undertrained)"


def undertrained(board: pd.DataFrame) -> set[str]:
    """Entries (method/loss) the leaderboard marks as still improving at their step cap."""
    return {f"{r.method}/{r.loss}" for r in board.itertuples() if getattr(r, "undertrained", "no") == "yes"}


def claim_rows(board: pd.DataFrame, images: pd.DataFrame, seed: int = 0) -> list[dict]:
    status = {f"{r.method}/{r.loss}": r.status for r in board.itertuples()}
    still_improving = undertrained(board)
    rows = []
    for claim, a, b, column, sign in CLAIMS:
        row = {"claim": claim, "a - b": f"{a} - {b}", "score": column}
        missing = [entry for entry in (a, b) if status.get(entry) != "ok"]
        if missing:
            rows.append({**row, "verdict": "no verdict: " + ", ".join(f"{e} is {status.get(e, 'absent')}" for e in missing)})
            continue
        tables = score_tables(images[images["entry"].isin([a, b])], column)
        interval = paired_interval(tables[a], tables[b], seed)
        digits = 2 if column == "psnr" else 4
        rows.append({**row, "difference": f"{interval.mean:+.{digits}f}",
                     "95% interval": f"[{interval.low:+.{digits}f}, {interval.high:+.{digits}f}]",
                     "seeds": interval.seeds, "images": interval.n, "verdict": verdict(interval, sign)
                     + training_caveat([entry for entry in (a, b) if entry in still_improving], a, interval, column)})
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


def provenance(board: pd.DataFrame) -> str:
    columns = ["git_commit", "device", "threads", "pid_cpus", "hostname", "python",
               *sorted(c for c in board.columns if c.startswith("version_"))]
    return "; ".join(f"{c}: {', '.join(sorted(board[c].dropna().astype(str).unique()))}" for c in columns if c in board)


def report(results: Path, task: str) -> str:
    board = pd.read_csv(results / "leaderboard.csv")
    board = board[board["task"] == task]
    images = per_image(results, task)
    still_improving = undertrained(board)
    flagged = []
    for r in board.itertuples():
        entry = f"{r.method}/{r.loss}"
        if entry in still_improving:
            flagged.append(f"{entry} ({r.status}, undertrained)")
        elif r.status != "ok":
            flagged.append(f"{entry} ({r.status})")
    return "\n".join([
        f"# The seed papers' claims on `{task}`, as measured\n",
        f"run provenance: {provenance(board)}\n",
        pd.DataFrame(claim_rows(board, images)).to_markdown(index=False),
        "\nODER's cost (ratios of means over seeds; train_step_s per training step, test_ms per image):\n",
        pd.DataFrame(cost_rows(board)).to_markdown(index=False),
        "\nRows not ok or undertrained: " + (", ".join(flagged) or "none"),
    ]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--task", default="ct")
    parser.add_argument("--copy-to", type=Path, help="keep the printout, leaderboard, comparisons and figures here")
    args = parser.parse_args(argv)
    text = report(args.results, args.task)
    print(text)
    if args.copy_to:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        (args.copy_to / "claims.md").write_text(text)
        for source in ("leaderboard.md", "leaderboard.csv", "report/comparisons.csv",
                       "report/figures/learning.png", "report/figures/fidelity.png"):
            shutil.copy2(args.results / source, args.copy_to / Path(source).name)


if __name__ == "__main__":
    main()
