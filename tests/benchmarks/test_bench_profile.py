"""Smoke test of benchmarks/bench_profile.py through the runner (``make bench``'s ``profile`` step,
issue 17): gf.profile of a tiny encoder on both back ends, its model file's lines ranked. No timing
bound is asserted (shared box)."""
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


def test_profile_step_runs_tiny(tmp_path, capsys):
    """``make bench``'s ``profile`` step (issue 17): gf.profile on both back ends, user lines ranked."""
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "profile", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    with open(res) as f:
        data = json.load(f)
    assert data["errors"] == {}
    assert [r["backend"] for r in data["profile"]] == ["jax", "onnxruntime"]
    for r in data["profile"]:
        assert r["total_ms"] > 0 and r["units_ms"] > 0
        assert r["locations"][0][0].startswith("bench_ort_passes.py:"), r["locations"]  # the model file's lines
    assert "### gf.profile: Transformer encoder forward" in capsys.readouterr().out
