"""Smoke test of benchmarks/bench_xla_options.py: at tiny sizes every option set compiles, the
losses are compared with the default set's, and the memory part reports graphforge's remat
default. No timing is asserted (shared box)."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.mark.slow
def test_steps_part_compares_losses_and_refuses_changed_results(tmp_path, monkeypatch):
    from benchmarks import bench_xla_options as bench

    # a set whose losses differ from the default's beyond RTOL is refused, never timed
    monkeypatch.setattr(bench, "RTOL", -1.0)
    out = tmp_path / "x.json"
    assert bench.main(["--tiny", "--no-torch", "--part", "steps", "--case", "mlp128", "--sets",
                       "default,no-fast-min-max", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["xla_options"]["steps"]
    sets = row["sets"]
    assert sets["default"]["max_rel_diff"] == 0.0 and sets["no-fast-min-max"]["max_rel_diff"] < 1e-5
    assert sets["no-fast-min-max"]["refused"] and "gf-no-fast-min-max" not in row["ms"]
    assert row["ms"]["gf-default"]["median"] > 0 and row["ms"]["jax"]["median"] > 0


@pytest.mark.slow
def test_memory_part_reports_the_remat_default(tmp_path):
    from benchmarks import bench_xla_options as bench

    out = tmp_path / "m.json"
    assert bench.main(["--tiny", "--part", "memory", "--memory-sets", "default,keep-barriers+sched-memory",
                       "--json", str(out)]) == 0
    mem = json.loads(out.read_text())["xla_options"]["memory"]
    rows = {r["set"]: r for r in mem["rows"]}
    assert rows["graphforge-default"]["remat_peak"] == rows["keep-barriers+sched-memory"]["remat_peak"]
    assert rows["graphforge-default"]["remat_peak"] < rows["default"]["remat_peak"]
    assert mem["losses"]["plain"] == pytest.approx(mem["losses"]["remat"], rel=1e-6)


def test_run_reports_the_remat_xla_peak_target():
    from benchmarks import run

    rows = [{"contender": "float32", "xla_peak_ratio": 1.0, "time_ratio": 1.0},
            {"contender": "remat-nothing", "xla_peak_ratio": 0.55, "time_ratio": 1.1}]
    (t,) = run.check_targets({"precision_remat": rows})
    assert t["value"] == 0.55 and t["met"] and "XLA-reported peak" in t["target"]
    rows[1]["time_ratio"] = 1.5
    assert not run.check_targets({"precision_remat": rows})[0]["met"]
