"""The paired-seed precision parity benchmark: its paired statistics, and a tiny run (slow tier)."""
from __future__ import annotations

import json
import math

import pytest


def test_paired_summary_pairs_by_seed_and_skips_unpaired_seeds():
    from benchmarks.bench_precision_parity import paired_summary

    rows = [  # out of order on purpose; seed 2 has no fp16 run, seed 3 no float32 run
        {"precision": "fp16-mixed", "seed": 1, "accuracy": 0.975},
        {"precision": "float32", "seed": 0, "accuracy": 0.980},
        {"precision": "float32", "seed": 1, "accuracy": 0.990},
        {"precision": "fp16-mixed", "seed": 0, "accuracy": 0.990},
        {"precision": "float32", "seed": 2, "accuracy": 0.500},
        {"precision": "fp16-mixed", "seed": 3, "accuracy": 0.100},
    ]
    s = paired_summary(rows)["fp16-mixed"]
    assert s["seeds"] == 2
    assert s["diffs_pp"] == pytest.approx([1.0, -1.5])
    assert s["mean_pp"] == pytest.approx(-0.25)
    assert s["sd_pp"] == pytest.approx(math.sqrt(((1.25) ** 2 + (1.25) ** 2) / 1))
    assert s["se_pp"] == pytest.approx(s["sd_pp"] / math.sqrt(2))
    assert (s["min_pp"], s["max_pp"]) == pytest.approx((-1.5, 1.0))
    assert "float32" not in paired_summary(rows)


@pytest.mark.slow
def test_tiny_run_trains_each_precision_on_the_same_seed(tmp_path):
    from benchmarks import bench_precision_parity as bench

    out = tmp_path / "parity.json"
    assert bench.main(["--tiny", "--precisions", "float32,fp16-mixed", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["precision_parity"]
    assert [(r["precision"], r["seed"]) for r in rows] == [("float32", 0), ("fp16-mixed", 0)]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert rows[1]["final_loss_scale"] > 0 and 0.0 <= rows[1]["skipped_fraction"] <= 1.0


@pytest.mark.slow
def test_tiny_gradient_check_reports_each_loss_scale_and_bf16(tmp_path):
    from benchmarks import bench_precision_parity as bench

    out = tmp_path / "grad.json"
    assert bench.main(["--tiny", "--grad-check", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["precision_grad_check"]
    assert [r["precision"] for r in rows] == ["fp16 scale 2^8", "fp16 scale 2^15", "fp16 scale 2^22", "bf16"]
    assert not rows[0]["skipped"] and not rows[-1]["skipped"]  # 2^8 and bf16 (unscaled) cannot overflow
    for r in rows:
        if r["skipped"]:  # early in training 2^22 overflows float16: the trainer skips that step
            continue
        assert r["rel_err"] and all(0.0 <= e < 0.5 for e in r["rel_err"].values()), r
        assert "conv1.bias" not in r["rel_err"]  # BN cancels it: no meaningful relative error
