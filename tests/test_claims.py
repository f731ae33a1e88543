"""benchmarks/claims.py: verdicts decided by the protocol, read from a toy finished run whose
answers are known (a constant gap between rows, a row that is not ok), and Holm's procedure
against a hand computation."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deqbench.leaderboard import PROTOCOL, load_protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import claims  # noqa: E402

IMAGES = 12
SEEDS = (0, 1, 2)


def toy_results(root: Path, psnr_offsets: dict[str, float], status: dict[str, str] | None = None,
                undertrained: tuple[str, ...] = (), seeds: tuple[int, ...] = SEEDS,
                step_s: dict[str, float] | None = None) -> Path:
    """Every entry (method/loss) on CT, one run per seed: per-image PSNR = base + offset +
    image noise of the entry + seed noise; equivariance error (offset / 100 above 0.05) on
    the first four images only."""
    rng = np.random.default_rng(0)
    base = rng.normal(25, 2, size=IMAGES)
    rows = []
    for entry, offset in psnr_offsets.items():
        method, loss = entry.split("/")
        noise = rng.normal(0, 0.1, size=IMAGES)
        for seed in seeds:
            run = root / "runs" / "ct" / method / loss / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "run.json").write_text(json.dumps({"task": "ct", "method": method, "loss": loss, "seed": seed}))
            equivariance = [0.05 + offset / 100] * 4 + [float("nan")] * (IMAGES - 4)
            pd.DataFrame({"split": "test", "image": range(IMAGES), "psnr": base + offset + noise + 0.05 * seed,
                          "equivariance_error": equivariance}).to_csv(run / "images.csv", index=False)
        rows.append({"task": "ct", "method": method, "loss": loss, "status": (status or {}).get(entry, "ok"),
                     "seeds": ",".join(map(str, seeds)), "undertrained": "yes" if entry in undertrained else "no",
                     "train_step_s": (step_s or {}).get(entry, 1.0),
                     "train_step_cpu_s": (step_s or {}).get(entry, 1.0), "train_min": 10.0, "test_ms": 5.0,
                     "steps": 800, "git_commit": "abc", "device": "cpu"})
    pd.DataFrame(rows).to_csv(root / "leaderboard.csv", index=False)
    return root


def toy_protocol(path: Path, **changes) -> Path:
    """The shipped protocol with one claim (DEQ-ID above DEQ-JFB under EI on CT) changed by ``changes``."""
    protocol = load_protocol()
    claim = {**next(c for c in protocol["claims"] if c["id"] == "id-above-jfb"), "tasks": ["ct"], **changes}
    path.write_text(yaml.safe_dump({**protocol, "claims": [claim]}))
    return path


def decided(results: Path, protocol: Path = PROTOCOL) -> dict[tuple[str, str], dict]:
    board = pd.read_csv(results / "leaderboard.csv", dtype={"seeds": str})
    pairs = claims.decide(board, claims.per_image(results, ["ct", "mri"]), load_protocol(protocol))
    return {(pair["claim"]["id"], pair["task"]): pair for pair in pairs}


def test_holm_adjusts_as_by_hand():
    """Sorted 0.01, 0.03, 0.04: times 3, 2, 1 = 0.03, 0.06, 0.04, then the running maximum."""
    adjusted, ranks = claims.holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06]) and list(ranks) == [1, 3, 2]


def test_a_changed_margin_changes_the_verdict(tmp_path):
    results = toy_results(tmp_path / "run", {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0})
    verdicts = {margin: decided(results, toy_protocol(tmp_path / f"p{margin}.yaml", margin=margin))[("id-above-jfb", "ct")]
                for margin in (0.0, 2.0)}
    assert verdicts[0.0]["verdict"] == "holds" and verdicts[2.0]["verdict"] == "does not hold"
    assert verdicts[0.0]["p"] == pytest.approx(1 / 10001)  # every resample above the margin: the floor
    less = decided(results, toy_protocol(tmp_path / "less.yaml", direction="less", margin=2.0))
    assert less[("id-above-jfb", "ct")]["verdict"] == "holds"


def test_a_difference_at_its_margin_is_not_separated(tmp_path):
    results = toy_results(tmp_path / "run", {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0})
    observed = decided(results, toy_protocol(tmp_path / "p0.yaml"))[("id-above-jfb", "ct")]["mean"]
    pair = decided(results, toy_protocol(tmp_path / "p.yaml", margin=observed))[("id-above-jfb", "ct")]
    assert pair["verdict"] == "not separated" and pair["p_holm"] > 0.5


def test_the_shipped_protocol_decides_every_pair_of_the_family(tmp_path):
    offsets = {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0, "deq-id/sup": 1.5, "unrolled/ei": 2.0, "pnp/ei": 0.0,
               "red/ei": 0.0, "unet/ei": 0.0, "oder/ei": 0.8, "oder/sup": 1.4}
    found = decided(toy_results(tmp_path, offsets, {"unet/ei": "unreliable"},
                                step_s={"oder/sup": 1.2, "oder/ei": 0.5}))
    assert len(found) == 20  # 10 claims on ct and mri: one family
    assert found[("id-above-jfb", "ct")]["verdict"] == "holds"
    assert found[("id-above-unrolled", "ct")]["verdict"] == "does not hold"
    assert found[("ei-close-to-sup", "ct")]["verdict"] == "holds"  # -0.5 dB against a margin of -1 dB
    assert found[("id-above-unet", "ct")]["verdict"] == "no verdict: unet/ei unreliable"
    assert found[("id-above-jfb", "mri")]["verdict"] == "no verdict: deq-id/ei absent, deq-jfb/ei absent"
    assert found[("oder-small-cost-sup", "ct")]["verdict"] == "does not hold: cost ratio 1.20 > 1.00"  # -0.1 dB, dearer
    assert found[("oder-small-cost-ei", "ct")]["verdict"] == "holds"  # -0.2 dB at half DEQ-ID's step
    assert found[("ei-more-equivariant", "ct")]["verdict"] == "holds"  # 0.06 < 0.065 on all four images
    first = min(found.values(), key=lambda pair: pair["p"])
    assert first["holm_level"] == pytest.approx(1 - 0.05 / 20)  # rank 1 of 20
    assert found[("id-above-jfb", "mri")]["p_holm"] == 1.0  # untested, yet counted in the family


def test_a_row_trained_on_other_seeds_than_the_protocol_gets_no_verdict(tmp_path):
    results = toy_results(tmp_path, {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0}, seeds=(0, 1))
    assert decided(results)[("id-above-jfb", "ct")]["verdict"] == ("no verdict: deq-id/ei seeds 0,1 (protocol: 0,1,2), "
                                                                    "deq-jfb/ei seeds 0,1 (protocol: 0,1,2)")


def test_an_undertrained_row_is_marked_and_its_verdict_left_to_the_protocol(tmp_path):
    results = toy_results(tmp_path, {"deq-id/ei": 1.0, "deq-jfb/ei": 0.0}, undertrained=("deq-jfb/ei",))
    text = claims.report(results, ["ct"])
    line = next(line for line in text.splitlines() if line.startswith("| DEQ-ID above DEQ-JFB under EI"))
    assert "| holds " in line and line.rstrip(" |").endswith("deq-jfb/ei")
    assert f"protocol version {load_protocol()['version']}" in text and "Holm over 20 (claim, task) pairs" in text
    assert "deq-jfb/ei (ok, undertrained)" in text


def test_costs_are_ratios_of_oder_to_each_reference(tmp_path):
    offsets = {"deq-id/sup": 1.0, "deq-jfb/sup": 0.0, "oder/sup": 0.5}
    steps = {"deq-id/sup": 2.0, "deq-jfb/sup": 1.0, "oder/sup": 1.5}
    board = pd.read_csv(toy_results(tmp_path, offsets, {"deq-id/sup": "unreliable"}, step_s=steps) / "leaderboard.csv")
    rows = {row["ODER / "]: row for row in claims.cost_rows(board)}
    assert rows["deq-id"]["train_step_s ratio"] == "0.75" and rows["deq-jfb"]["train_step_s ratio"] == "1.50"
    assert rows["deq-id"]["status (ODER, reference)"] == "ok, unreliable"  # shown, not hidden
    assert rows["deq-jfb"]["status (ODER, reference)"] == "ok, ok"


def test_the_claims_profile_trains_the_protocols_seeds_on_every_task_of_its_claims():
    root = PROTOCOL.parents[1]
    profile = yaml.safe_load((root / "config" / "claims.yaml").read_text())
    protocol = load_protocol(PROTOCOL)
    assert profile["seeds"] == protocol["seeds"]
    assert {task for claim in protocol["claims"] for task in claim["tasks"]} <= set(profile["run_tasks"])
    assert {entry.split("/")[0] for claim in protocol["claims"] for entry in (claim["a"], claim["b"])} <= set(profile["methods"])
