"""bench_step_compare runs end to end at tiny sizes: both sides' compiled programs are profiled from
XLA's own analysis, and the ABBA timing reports a ratio (no timing is asserted on this shared box)."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("jax")
pytest.importorskip("optax")


def test_step_compare_runs_tiny(tmp_path):
    from benchmarks import bench_step_compare

    out = tmp_path / "cmp.json"
    hlo = tmp_path / "hlo"
    assert bench_step_compare.main(["--tiny", "--case", "mlp128", "--json", str(out), "--dump-hlo", str(hlo)]) == 0
    (row,) = json.loads(out.read_text())["step_compare"]
    for side in ("graphforge", "jax"):
        p = row[side]
        assert p["bytes_accessed"] > 0 and p["flops"] > 0 and p["dots"] >= 3
        assert p["donated"] == 13   # 4 params + adam's count, mu, nu
        assert (hlo / f"mlp128_{side}.hlo.txt").read_text().startswith("HloModule")
    t = row["timing"]
    assert t["pairs"] == 20 and t["ratio"] > 0 and t["graphforge"]["median_s"] > 0
