"""benchmarks/claims.py: the verdicts on the seed claims, read from a toy finished run whose
answers are known (a constant gap between rows, a row that is not ok)."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import claims  # noqa: E402

IMAGES = 12


def toy_results(root: Path, psnr_offsets: dict[str, float], status: dict[str, str],
                undertrained: tuple[str, ...] = ()) -> Path:
    """Two seeds of every entry (method/loss) on CT: per-image PSNR = base + offset +
    seed noise, equivariance error on the first four images only."""
    base = np.random.default_rng(0).normal(25, 2, size=IMAGES)
    rows = []
    for entry, offset in psnr_offsets.items():
        method, loss = entry.split("/")
        for seed in (0, 1):
            run = root / "runs" / "ct" / method / loss / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "run.json").write_text(json.dumps({"task": "ct", "method": method, "loss": loss, "seed": seed}))
            equivariance = [0.05 + offset / 100] * 4 + [float("nan")] * (IMAGES - 4)
            pd.DataFrame({"split": "test", "image": range(IMAGES), "psnr": base + offset + 0.01 * seed,
                          "equivariance_error": equivariance}).to_csv(run / "images.csv", index=False)
        rows.append({"task": "ct", "method": method, "loss": loss, "status": status.get(entry, "ok"),
                     "undertrained": "yes" if entry in undertrained else "no",
                     "train_step_s": 1.0 + offset, "train_min": 10.0, "test_ms": 5.0, "steps": 800,
                     "git_commit": "abc", "device": "cpu"})
    pd.DataFrame(rows).to_csv(root / "leaderboard.csv", index=False)
    return root


def verdicts(results: Path) -> dict[str, dict]:
    board = pd.read_csv(results / "leaderboard.csv")
    return {row["claim"]: row for row in claims.claim_rows(board, claims.per_image(results, "ct"))}


def test_verdicts_follow_the_sign_of_a_constant_gap_and_name_a_row_that_is_not_ok(tmp_path):
    offsets = {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0, "deq-id/sup": 1.5, "unrolled/ei": 2.0, "pnp/ei": 0.0,
               "red/ei": 0.0, "unet/ei": 0.0, "oder/ei": 0.5, "oder/sup": 1.0}
    found = verdicts(toy_results(tmp_path, offsets, {"unet/ei": "unreliable: test"}))
    holds = found["DEQ-ID above DEQ-JFB under EI"]
    assert holds["verdict"] == "holds" and holds["difference"] == "+1.00" and holds["seeds"] == 2
    assert found["EI-trained DEQ-ID above unrolling"]["verdict"] == "reversed"
    assert found["DEQ-ID: EI close to supervised (gap)"]["difference"] == "-0.50"
    assert found["EI-trained DEQ-ID above U-Net"]["verdict"] == "no verdict: unet/ei is unreliable: test"
    oder = found["ODER against DEQ-JFB, same gradient (EI)"]
    assert oder["verdict"] == "measured" and oder["difference"] == "+0.50"  # no side claimed: the gap is the answer
    equivariance = found["EI-trained DEQ-ID more equivariant than supervised"]
    assert equivariance["images"] == 4 and equivariance["verdict"] == "holds"  # 0.06 < 0.065 on all four


def test_costs_are_ratios_of_oder_to_each_reference(tmp_path):
    offsets = {"deq-id/sup": 1.0, "deq-jfb/sup": 0.0, "oder/sup": 0.5}
    board = pd.read_csv(toy_results(tmp_path, offsets, {"deq-id/sup": "unreliable: capped"}) / "leaderboard.csv")
    rows = {row["ODER / "]: row for row in claims.cost_rows(board)}
    assert rows["deq-id"]["train_step_s ratio"] == "0.75" and rows["deq-jfb"]["train_step_s ratio"] == "1.50"
    assert rows["deq-id"]["status (ODER, reference)"] == "ok, unreliable: capped"  # shown, not hidden
    assert rows["deq-jfb"]["status (ODER, reference)"] == "ok, ok"


def test_a_verdict_on_an_undertrained_row_is_provisional_and_names_it(tmp_path):
    # deq-id/sup is 0.5 dB below deq-id/ei and still improving: it could catch up
    offsets = {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0, "deq-id/sup": 0.5}
    found = verdicts(toy_results(tmp_path, offsets, {}, undertrained=("deq-id/sup",)))
    assert found["DEQ-ID above DEQ-JFB under EI"]["verdict"] == "holds"
    gap = found["DEQ-ID: EI close to supervised (gap)"]
    assert gap["verdict"] == "measured (provisional: deq-id/sup undertrained)" and gap["difference"] == "+0.50"


def test_a_gap_that_training_the_upper_row_can_only_widen_is_settled(tmp_path):
    # deq-id/sup is 0.5 dB above deq-id/ei and still improving: the gap can only grow
    offsets = {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0, "deq-id/sup": 1.5, "unrolled/ei": 2.0}
    found = verdicts(toy_results(tmp_path, offsets, {}, undertrained=("deq-id/sup", "deq-jfb/ei", "unrolled/ei")))
    gap = found["DEQ-ID: EI close to supervised (gap)"]
    assert gap["difference"] == "-0.50" and gap["verdict"].startswith("measured (settled: only deq-id/sup")
    assert "it is the upper row" in gap["verdict"] and "stays below -0.4" in gap["verdict"]
    # deq-jfb/ei is the lower row and still improving: it could catch up
    assert found["DEQ-ID above DEQ-JFB under EI"]["verdict"] == "holds (provisional: deq-jfb/ei undertrained)"
    # unrolled/ei is the upper row and still improving: DEQ-ID falls further behind
    assert found["EI-trained DEQ-ID above unrolling"]["verdict"].startswith("reversed (settled: only unrolled/ei")
