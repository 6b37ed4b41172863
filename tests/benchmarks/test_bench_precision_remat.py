"""The mixed-precision / remat benchmark runs (tiny sizes) and reports every contender."""
from __future__ import annotations

import json


def test_tiny_run_reports_every_contender(tmp_path):
    from benchmarks import bench_precision_remat as bench

    out = tmp_path / "pr.json"
    assert bench.main(["--tiny", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["precision_remat"]
    assert [r["contender"] for r in rows] == list(bench.CONTENDERS)
    for r in rows:
        assert r["step_ms"] > 0 and r["est_peak_bytes"] > 0 and r["xla_peak_bytes"] > 0
    mixed = {r["contender"]: r for r in rows}
    assert mixed["bf16-mixed"]["est_peak_ratio"] < 1.0  # half activations
