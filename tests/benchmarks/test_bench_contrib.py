"""Smoke test of benchmarks/bench_contrib.py through the runner (tiny encoder, no torch): both
graphforge exports and jax.jit are run, checked against each other (contrib within 1e-4) and timed;
the contrib rows reach the summary table and the targets. No timing bound is asserted (shared box)."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("jax")
pytest.importorskip("onnxruntime")


def test_contrib_step_runs_tiny(tmp_path, capsys):
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "contrib", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    with open(res) as f:
        data = json.load(f)
    assert data["errors"] == {}
    (m,) = data["contrib"]
    assert m["ops"]["gf-contrib"].get("Attention") == 1  # the tiny encoder has one layer (q/k/v packed)
    assert "Attention" not in m["ops"]["gf-portable"]
    for row in m["rows"]:
        assert set(row["results"]) == {"gf-portable", "gf-contrib", "jax.jit"}
        assert row["max_abs_diff"]["gf-contrib"] <= 1e-4
    targets = [t["target"] for t in data["targets"]]
    assert "contrib b64: gf-contrib / gf-portable (default if < 1)" in targets
    assert "onnxruntime contrib kernels: Transformer encoder" in capsys.readouterr().out

